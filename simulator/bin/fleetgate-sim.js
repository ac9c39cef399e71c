#!/usr/bin/env node
// The `fleetgate-sim` command. `#cli` is the compiled simulator (dist/run.js); under the
// "@fleetgate/source" condition (this repository's tests and scripts, with tsx) it is the
// TypeScript source instead. See "imports" in package.json.
import '#cli';
