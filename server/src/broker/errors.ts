import { FleetgateError } from '@fleetgate/device-sdk/errors';

/**
 * Broker refusals. Each code maps to an MQTT 3.1.1 CONNACK return code (connection refusals) or
 * to the action taken (publish refused: connection closed, MQTT-3.3.5-2; subscribe refused:
 * SUBACK 0x80). Codes are stable and listed in docs/errors.md.
 */
export const BROKER_ERRORS = {
  BROKER_NO_CLIENT_CERT: { returnCode: 5, message: 'a client certificate is required' },
  BROKER_CERT_UNTRUSTED: { returnCode: 5, message: 'the client certificate is not trusted' },
  BROKER_CERT_EXPIRED: { returnCode: 5, message: 'the client certificate has expired' },
  BROKER_NOT_OPERATIONAL: { returnCode: 5, message: 'only operational device certificates may connect' },
  BROKER_CLIENT_ID_MISMATCH: { returnCode: 5, message: 'the MQTT client id must equal the certificate identity' },
  BROKER_DEVICE_UNKNOWN: { returnCode: 5, message: 'the device is not enrolled' },
  BROKER_DEVICE_REVOKED: { returnCode: 5, message: 'the device is revoked' },
  BROKER_DEVICE_DISABLED: { returnCode: 5, message: 'the device is disabled' },
  BROKER_CERT_REVOKED: { returnCode: 5, message: 'the certificate is revoked' },
  BROKER_CERT_SUPERSEDED: { returnCode: 5, message: 'a newer certificate of this device is in use; connect with it' },
  BROKER_WILL_DENIED: { returnCode: 5, message: 'the will topic is outside the device namespace' },
  BROKER_SERVICE_UNKNOWN: { returnCode: 5, message: 'the service is not allow-listed in broker.services' },
  BROKER_KEEPALIVE: { returnCode: 2, message: 'the keepalive is outside the allowed range' },
  BROKER_TOO_MANY_CONNECTIONS: { returnCode: 3, message: 'the broker is at its connection limit' },
  BROKER_REGISTRY_UNAVAILABLE: { returnCode: 3, message: 'the registry does not answer; retry later' },
  BROKER_PUBLISH_DENIED: { returnCode: 0, message: 'publishing to this topic is not allowed' },
  BROKER_SUBSCRIBE_DENIED: { returnCode: 0, message: 'subscribing to this filter is not allowed' },
  BROKER_TOPIC_INVALID: { returnCode: 0, message: 'the topic is not valid' },
  BROKER_PACKET_TOO_LARGE: { returnCode: 0, message: 'the packet exceeds the size limit' },
  BROKER_RATE_SHED: { returnCode: 0, message: 'connection rate exceeded; connection closed before the handshake' },
  BROKER_LOAD_SHED: { returnCode: 0, message: 'the broker is at its load limit; connection closed before the handshake, retry later' },
  BROKER_RETAINED_LIMIT: { returnCode: 0, message: 'the client holds as many retained messages or bytes as allowed' },
  BROKER_RETAINED_FULL: { returnCode: 0, message: 'the broker holds as many retained bytes as allowed' },
  BROKER_DELIVERY_DENIED: { returnCode: 0, message: 'a message outside the client subscribe rules was not delivered' },
  BROKER_SUBSCRIPTION_LIMIT: { returnCode: 0, message: 'the client holds as many subscriptions as allowed' },
} as const;

/** A stable broker error code. */
export type BrokerErrorCode = keyof typeof BROKER_ERRORS;

/** A broker refusal. `returnCode` is what aedes puts in the CONNACK for connection refusals. */
export class BrokerError extends FleetgateError<BrokerErrorCode> {
  override readonly name = 'BrokerError';
  readonly returnCode: number;

  constructor(code: BrokerErrorCode, detail?: string) {
    super(code, detail ? `${BROKER_ERRORS[code].message}: ${detail}` : BROKER_ERRORS[code].message);
    this.returnCode = BROKER_ERRORS[code].returnCode;
  }
}
