/**
 * The base of every fleetgate error, on the device and on the server.
 *
 * This module has no imports on purpose: the server and the CLI load it through the light
 * subpath `@fleetgate/device-sdk/errors` (the SDK index loads MQTT.js; the CLI must start fast),
 * and the SDK never imports the server, so the base lives here.
 */

/**
 * An error with a stable `code` from one of fleetgate's catalogues (docs/errors.md). The message
 * is safe to show to whoever caused the error; internals go in `cause` (logged, never sent).
 * Each subclass sets `name` and narrows `Code` to the keys of its catalogue object, so a code
 * that is not catalogued does not compile.
 */
export abstract class FleetgateError<Code extends string = string> extends Error {
  /** The stable code: never reused for another meaning. */
  readonly code: Code;

  constructor(code: Code, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}
