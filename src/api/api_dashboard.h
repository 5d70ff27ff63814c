/* api_dashboard.h - private to src/api/api_dashboard.c and the generated admin_assets.c:
 * the dashboard's static files, embedded at build time (scripts/embed_assets.py
 * over the files of admin/), served at /admin/.
 * Owner: immutable data, any thread. */
#ifndef RINGCAST_API_DASHBOARD_H
#define RINGCAST_API_DASHBOARD_H

#include <stddef.h>

struct rc_dashboard_asset {
    const char *name;  /* "index.html" */
    const char *ctype; /* its Content-Type */
    const unsigned char *data;
    size_t len;
};

extern const struct rc_dashboard_asset rc_dashboard_assets[];
extern const size_t rc_dashboard_nassets;

#endif
