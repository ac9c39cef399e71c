/**
 * Tests run this repository's packages from their TypeScript sources, so a change is tested
 * without a build: tsx compiles on the fly, and the "@fleetgate/source" export condition makes
 * `@fleetgate/device-sdk`, the `fleetgate` bin (`#cli`) and the others resolve to `src/` instead
 * of the compiled `dist/` that users get (test/packages.test.ts tests that one).
 *
 * Every Node child a test starts from the repository (the CLI, `fleetgate serve`, the simulator)
 * gets these options; ava's own workers get them from package.json.
 */
export const SOURCE_NODE_ARGS: readonly string[] = ['--import', import.meta.resolve('tsx'), '--conditions=@fleetgate/source'];

/** The same options as a NODE_OPTIONS value, for commands a shell script runs (the guides). */
export const SOURCE_NODE_OPTIONS = SOURCE_NODE_ARGS.join(' ').replace('--import ', '--import=');
