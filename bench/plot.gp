# bench/plot.gp - PNG plots of a bench/run result directory.
# usage: gnuplot -e "dir='bench/results/<stamp>'" bench/plot.gp
# Reads dir/throughput.dat, dir/latency.dat and dir/cost.dat (written by bench/run).
if (!exists("dir")) dir = "."
set terminal pngcairo size 900,560 font "DejaVu Sans,11" noenhanced
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top right
set datafile missing "NaN"

set output dir."/throughput.png"
set title "Deliveries per second (median); one server core, vii: 2 shards unpinned"
set ylabel "deliveries/s (log scale)"
set logscale y
set format y "%.0s%c"
set yrange [10000:*]
plot dir."/throughput.dat" using 2:xtic(1) title columnheader(2) lc rgb "#1f77b4", \
     "" using 3 title columnheader(3) lc rgb "#ff7f0e", \
     "" using 4 title columnheader(4) lc rgb "#2ca02c"

set output dir."/latency.png"
set title "Case iv: delivery latency at 100 events/s to 1,000 subscribers (median of runs)"
set ylabel "latency (ms, log scale)"
set format y "%g"
set yrange [*:*]
plot dir."/latency.dat" using ($2/1000):xtic(1) title columnheader(2) lc rgb "#9ecae1", \
     "" using ($3/1000) title columnheader(3) lc rgb "#4292c6", \
     "" using ($4/1000) title columnheader(4) lc rgb "#2171b5", \
     "" using ($5/1000) title columnheader(5) lc rgb "#08306b"

set output dir."/cost.png"
set style data linespoints
set title "Server CPU per delivery vs subscribers (one topic)"
set ylabel "server CPU ns per delivery (log scale)"
set xlabel "subscribers"
set logscale xy
set xrange [500:20000]
set yrange [*:*]
set key top left
plot dir."/cost.dat" using 1:2 title columnheader(2) lw 2 pt 7 lc rgb "#1f77b4", \
     "" using 1:3 title columnheader(3) lw 2 pt 5 lc rgb "#ff7f0e", \
     "" using 1:4 title columnheader(4) lw 2 pt 9 lc rgb "#2ca02c"
