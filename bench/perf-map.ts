/**
 * Node flags for `--perf-map`: a map of every JavaScript function's code, interpreted ones
 * included, in /tmp/perf-<pid>.map, so that Linux `perf` names JavaScript frames. Unlike
 * `--cpu-prof`, sampling with `perf` charges every thread only its own CPU, and costs the server
 * next to nothing once its code is compiled.
 */
export const PERF_MAP_ARGS: readonly string[] = ['--perf-basic-prof', '--interpreted-frames-native-stack'];
