/* cli.h - the ringcast command's client commands (publish, subscribe, stats, disconnect,
 * gentoken, checktoken, genconfig), run by main.c instead of the server when argv[1]
 * names one (src/cli/; docs/OPERATIONS.md, "The ringcast command").
 * Owner: the main thread, before (instead of) any server thread; single-threaded.
 * Exit codes: 0 done, 1 the server was unreachable or failed, 2 bad arguments or
 *   configuration, 3 refused (by the server, or checktoken's verdict). */
#ifndef RINGCAST_CLI_H
#define RINGCAST_CLI_H

#include <stdbool.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Does arg name a client command (not serve / checkconfig, which main.c runs)? */
bool rc_cli_is_command(const char *arg);

/* Run the command argv[1] with argv[2..argc) as its arguments; the exit code. */
int rc_cli_run(int argc, char **argv, char **envp);

/* The command list for `ringcast --help`. */
void rc_cli_usage_commands(FILE *f);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_CLI_H */
