/** Ports for child processes that need a number: the benchmark's chooser, below the ephemeral range. */
export { freePort, freePorts } from '../../bench/free-port.ts';
