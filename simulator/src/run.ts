import { main } from './cli.ts';

const code = await main(process.argv.slice(2));
process.exitCode = code;
// The run is over and reported. Devices closed by force at the end of the stop bound may leave
// a request to a server that does not answer, to time out on its own: the command does not wait
// for it (an unref'd timer fires only while something else keeps the process alive).
setTimeout(() => process.exit(code), 1000).unref();
