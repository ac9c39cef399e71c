/** Ports for child processes that need a number: the benchmark's chooser, below the ephemeral range. */
export { freePort, freePorts } from '../../bench/free-port.ts';

/**
 * What `fleetgate serve` says when a port it was given is taken: a port chosen free can be taken
 * by a parallel test before the server binds it, a race between tests to run again on new ports.
 */
export const PORT_TAKEN = /SERVE_LISTEN_FAILED[^\n]*EADDRINUSE/;
