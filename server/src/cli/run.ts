import { main } from './main.ts';

process.exitCode = await main(process.argv.slice(2));
// A command is done when main() returns. Whatever a library left open (node-postgres keeps the
// socket of a refused login until the server's authentication_timeout, 60 s) must not hold the
// process: exit soon after, if it has not exited by itself. Unreferenced, so it never delays one.
setTimeout(() => process.exit(), 1_000).unref();
