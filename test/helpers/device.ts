import type { ExecutionContext } from 'ava';
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import { createCsr, generateDeviceKeyPair } from '../../device-sdk/src/csr.ts';
import { EST_PATHS } from '../../device-sdk/src/protocol.ts';
import { toPem } from '../../server/src/pki/pem.ts';
import { csrBody, estRequest } from './est-client.ts';
import { factoryCredentials, type Credential, type Fleet } from './fleet.ts';
import { certificatesFromCertsOnly } from './pkcs7.ts';

/** A device that went through the real enrollment: its bootstrap and operational credentials. */
export interface EnrolledDevice {
  readonly id: string;
  readonly bootstrap: Credential;
  readonly operational: Credential;
}

/** Enrolls a device over EST (SDK CSR, bootstrap mTLS) and returns both credentials. */
export async function enrollWithBootstrap(fleet: Fleet, bootstrap: Credential): Promise<EnrolledDevice> {
  const keys = await generateDeviceKeyPair();
  const response = await estRequest({ url: fleet.estUrl, path: EST_PATHS.simpleenroll, body: csrBody(await createCsr(bootstrap.id, keys)), ca: fleet.rootPem, cert: bootstrap.certPem, key: bootstrap.keyPem });
  if (response.status !== 200) throw new Error(`enrollment of ${bootstrap.id} failed: ${response.text}`);
  const keyDer = Buffer.from(await globalThis.crypto.subtle.exportKey('pkcs8', keys.privateKey));
  return {
    id: bootstrap.id,
    bootstrap,
    operational: { id: bootstrap.id, certPem: certificatesFromCertsOnly(response.text).map((der) => toPem('CERTIFICATE', der)).join(''), keyPem: toPem('PRIVATE KEY', keyDer) },
  };
}

/** Issues factory credentials and enrolls `count` devices of a model. */
export async function enrolledDevices(t: ExecutionContext, fleet: Fleet, model = 'thermostat', count = 1): Promise<EnrolledDevice[]> {
  const bootstraps = await factoryCredentials(t, fleet, model, count);
  return Promise.all(bootstraps.map((bootstrap) => enrollWithBootstrap(fleet, bootstrap)));
}

/** MQTT.js connection options for a credential against the fleet's broker (no auto-reconnect). */
export function mqttOptions(fleet: Pick<Fleet, 'rootPem'>, credential: Credential, overrides: Partial<IClientOptions> = {}): IClientOptions {
  return {
    clientId: credential.id,
    ca: fleet.rootPem,
    cert: credential.certPem,
    key: credential.keyPem,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    keepalive: 30,
    ...overrides,
  };
}

/** Connects with MQTT.js; closed at the end of the test. */
export async function connectMqtt(t: ExecutionContext, fleet: Fleet, credential: Credential, overrides: Partial<IClientOptions> = {}): Promise<MqttClient> {
  const client = await connectAsync(fleet.server.mqttUrl, mqttOptions(fleet, credential, overrides));
  t.teardown(() => client.endAsync(true));
  return client;
}

/** The CONNACK return code of a refused connection (throws if the connection was accepted). */
export async function connackCode(fleet: Fleet, credential: Credential, overrides: Partial<IClientOptions> = {}): Promise<number | string> {
  try {
    const client = await connectAsync(fleet.server.mqttUrl, mqttOptions(fleet, credential, overrides));
    await client.endAsync(true);
    return 0;
  } catch (error) {
    const code = (error as { code?: number | string }).code;
    return code ?? (error as Error).message;
  }
}
