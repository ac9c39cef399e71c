import type { DeviceErrorCode } from './errors.ts';
import type { EndpointKind } from './protocol.ts';

/** What the device knows about its current certificate. */
export interface CertificateInfo {
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/**
 * The one state of a FleetDevice (a discriminated union, not a set of booleans):
 *
 *   idle ─start→ enrolling ─→ connecting ─→ connected ⇄ renewing
 *                   ↑  │          │   ↑         │
 *                   │  ↓          ↓   │         ↓
 *                   └─ backing-off ───┘  (connection lost)
 *   any ─→ refused (the server said no: revoked, disabled, policy) ─ stop() → stopped
 */
export type DeviceState =
  | { readonly type: 'idle' }
  | { readonly type: 'enrolling'; readonly credential: 'bootstrap' }
  | { readonly type: 'connecting'; readonly certificate: CertificateInfo }
  | { readonly type: 'connected'; readonly certificate: CertificateInfo; readonly certExpires: Date }
  | { readonly type: 'renewing'; readonly certificate: CertificateInfo; readonly certExpires: Date }
  | { readonly type: 'backing-off'; readonly attempt: number; readonly delayMs: number; readonly reason: string }
  | { readonly type: 'refused'; readonly code: DeviceErrorCode; readonly reason: string }
  | { readonly type: 'stopped' };

/** The endpoints a device uses now (or tries next): one of its EST URLs and one of its MQTT URLs. */
export interface DeviceEndpoints {
  readonly est: string;
  readonly mqtt: string;
}

/** The device moved from one endpoint to the next after a failure that says the node is unavailable. */
export interface EndpointChange {
  readonly kind: EndpointKind;
  readonly from: string;
  readonly to: string;
  /** What failed on `from`. */
  readonly reason: string;
}

/** Events of a FleetDevice, with their arguments. */
export interface FleetDeviceEvents {
  /** Every state change. */
  state: [state: DeviceState];
  /** A certificate was obtained with the bootstrap credential. */
  enrolled: [certificate: CertificateInfo];
  /** A renewed certificate is in use (the connection switched to it). */
  renewed: [certificate: CertificateInfo];
  connected: [certificate: CertificateInfo];
  disconnected: [info: { readonly reason: string }];
  /** A message on a subscribed topic. */
  message: [topic: string, payload: Buffer];
  /** The server refused the device for good; it stopped trying. */
  refused: [info: { readonly code: DeviceErrorCode; readonly reason: string }];
  /** A problem the device recovers from by itself (it is retrying). */
  warning: [error: Error];
  /** The device moved to another of its EST or MQTT endpoints (given several): the one it used is unavailable. */
  endpoint: [change: EndpointChange];
}
