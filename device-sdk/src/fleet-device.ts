import { EventEmitter } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { IClientOptions, IClientPublishOptions, IClientSubscribeOptions } from 'mqtt';
import { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.ts';
import { systemClock, type Clock, type Random } from './clock.ts';
import { ConnectError, MqttConnector } from './connector.ts';
import { certificateFingerprint } from './tls-sessions.ts';
import { createCsr } from './csr.ts';
import type { CertificateInfo, DeviceEndpoints, DeviceState, FleetDeviceEvents } from './device-state.ts';
import { EndpointSelector, endpointList } from './endpoints.ts';
import { SdkError, type DeviceErrorCode } from './errors.ts';
import { EstClient, type TlsCredential } from './est-client.ts';
import { SoftwareKeyProvider, type DeviceKey, type KeyProvider } from './keys.ts';
import { Refusal, Retry } from './lifecycle-errors.ts';
import { deviceTopicRoot, isDeviceId, type EndpointKind } from './protocol.ts';
import { DEFAULT_RENEWAL, renewalDelay, type RenewalOptions } from './renewal.ts';
import type { CredentialStore, StoredCredential } from './store.ts';

/** How a FleetDevice is set up. Only the first four are required. */
export interface FleetDeviceOptions {
  readonly deviceId: string;
  /**
   * EST base URL, e.g. https://127.0.0.1:8443, or the EST URLs of the nodes of a cluster: the
   * device uses one and moves to the next when that node is unavailable (docs/sdk.md, "Failover").
   */
  readonly estUrl: string | readonly string[];
  /** Broker URL, e.g. mqtts://127.0.0.1:8883, or the broker URLs of the nodes of a cluster (as `estUrl`). */
  readonly mqttUrl: string | readonly string[];
  readonly store: CredentialStore;
  readonly keys?: KeyProvider;
  /** A new key at every renewal (default true). */
  readonly rotateKeyOnRenewal?: boolean;
  readonly renewal?: RenewalOptions;
  readonly backoff?: BackoffOptions;
  /** A connection that stayed up this long resets the backoff (default 60 s). */
  readonly stableAfterMs?: number;
  /** How long after expiry the server still renews a certificate (its `renewalGraceSeconds`, default 3 days). */
  readonly renewalGraceMs?: number;
  /** Consecutive broker refusals (CONNACK 5) the device investigates before giving up (default 3). */
  readonly maxRefusals?: number;
  readonly clock?: Clock;
  readonly random?: Random;
  /** Extra MQTT.js options (keepalive, connectTimeout ...); identity and TLS are the SDK's. */
  readonly mqtt?: Partial<IClientOptions>;
  /** Local address to connect from (a simulator spreads devices over several 127.x sources). */
  readonly localAddress?: string;
  /**
   * What the device presents in TLS: its certificate chain (`full`, the default, what any
   * broker expects), or the leaf only (`leaf`: fleetgate's listeners hold the issuing CAs, and
   * each TLS context then loads ~0.35 ms faster; a simulator of thousands of devices uses it).
   */
  readonly presentChain?: 'full' | 'leaf';
}

/** A credential ready to use: its key loaded and its certificate parsed. */
interface ActiveCredential {
  readonly stored: StoredCredential;
  readonly key: DeviceKey;
  readonly info: CertificateInfo;
  /** Built on first use and kept: every reconnection and renewal reuses it. */
  context?: SecureContext;
  /** SHA-256 of the certificate: the TLS sessions of this credential are kept under it. */
  fingerprint?: string;
}

/** EST answers that mean "this certificate is spent: enroll again with the bootstrap credential". */
const FALLBACK_CODES: ReadonlySet<DeviceErrorCode> = new Set(['ENROLL_CLIENT_CERT_EXPIRED', 'ENROLL_CERT_UNKNOWN', 'ENROLL_CERT_SUPERSEDED', 'ENROLL_CLIENT_CERT_UNTRUSTED']);

/** The first certificate of a PEM chain. */
function leafOf(chainPem: string): string {
  const end = chainPem.indexOf('-----END CERTIFICATE-----');
  return end === -1 ? chainPem : `${chainPem.slice(0, end)}-----END CERTIFICATE-----\n`;
}

function certificateInfo(certPem: string | X509Certificate): CertificateInfo {
  const certificate = typeof certPem === 'string' ? new X509Certificate(certPem) : certPem;
  return {
    serial: certificate.serialNumber.toLowerCase().replace(/^0+(?=.)/, ''),
    notBefore: new Date(certificate.validFrom),
    notAfter: new Date(certificate.validTo),
  };
}

/**
 * A fleetgate device: enrolls with its bootstrap credential, connects over mutual TLS, renews
 * before expiry with a new key, reconnects with backoff and jitter, and stops when the server
 * refuses it for good. One `state`, typed events, collaborators for EST, MQTT and storage.
 */
export class FleetDevice extends EventEmitter<FleetDeviceEvents> {
  private current: DeviceState = { type: 'idle' };
  private running = false;
  private lifecycle: Promise<void> | undefined;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly keys: KeyProvider;
  private readonly backoff: Backoff;
  private connector: MqttConnector | undefined;
  private readonly estEndpoints: EndpointSelector;
  private readonly mqttEndpoints: EndpointSelector;
  /** One EST client per endpoint used. */
  private readonly estClients = new Map<string, EstClient>();
  private active: ActiveCredential | undefined;
  private timers = new Set<unknown>();
  private renewalTimer: unknown;
  private wakeLifecycle: (() => void) | undefined;
  private refusals = 0;
  private root = '';

  constructor(private readonly options: FleetDeviceOptions) {
    super();
    if (!isDeviceId(options.deviceId)) throw new SdkError('SDK_CSR_INVALID', `invalid device id ${options.deviceId}`);
    this.estEndpoints = new EndpointSelector(endpointList('est', options.estUrl), options.deviceId);
    this.mqttEndpoints = new EndpointSelector(endpointList('mqtt', options.mqttUrl), options.deviceId);
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.keys = options.keys ?? new SoftwareKeyProvider();
    this.backoff = new Backoff(options.backoff ?? DEFAULT_BACKOFF, this.random);
  }

  get deviceId(): string {
    return this.options.deviceId;
  }

  get state(): DeviceState {
    return this.current;
  }

  /** The EST and MQTT endpoints in use (while connected: the broker the device is connected to). */
  get endpoint(): DeviceEndpoints {
    return { est: this.estEndpoints.current, mqtt: this.mqttEndpoints.current };
  }

  /** The device's topic namespace, `devices/<id>`. */
  get topicRoot(): string {
    return deviceTopicRoot(this.options.deviceId);
  }

  /** Starts the lifecycle; resolves when the device is first connected, or refused. */
  start(): Promise<void> {
    if (!this.running) {
      this.running = true;
      this.lifecycle = this.run();
    }
    return new Promise((resolve) => {
      const check = (state: DeviceState): void => {
        if (state.type === 'connected' || state.type === 'refused' || state.type === 'stopped') {
          this.off('state', check);
          resolve();
        }
      };
      if (['connected', 'refused', 'stopped'].includes(this.current.type)) resolve();
      else this.on('state', check);
    });
  }

  /** Stops for good: timers cleared, connection closed (queued QoS 1 messages flushed first unless `force`). */
  async stop(force = false): Promise<void> {
    this.running = false;
    for (const timer of this.timers) this.clock.clearTimeout(timer);
    this.timers.clear();
    this.wakeLifecycle?.();
    await this.connector?.end(force);
    await this.lifecycle;
    if (this.current.type !== 'refused') this.setState({ type: 'stopped' });
  }

  /**
   * Renews now instead of waiting for the schedule (an operator asked, or the firmware knows
   * the key is at risk). Resolves when the switch to the new certificate is done or failed.
   */
  async renewNow(): Promise<void> {
    if (this.current.type !== 'connected') throw new SdkError('SDK_NOT_CONNECTED', 'renewal needs a connected device');
    await this.renew();
  }

  /** Publishes under the device's namespace: `publish('telemetry', ...)` goes to `devices/<id>/telemetry`. */
  async publish(subtopic: string, payload: string | Buffer, options: IClientPublishOptions = { qos: 1 }): Promise<void> {
    const client = this.client();
    await client.publishAsync(this.scoped(subtopic, false), payload, options);
  }

  /** Subscribes under the device's namespace (`subscribe('commands/#')`). */
  async subscribe(subtopicFilter: string, options: IClientSubscribeOptions = { qos: 1 }): Promise<void> {
    await this.subscribeTopic(this.scoped(subtopicFilter, true), options);
  }

  /**
   * Subscribes to a topic outside the namespace that the device's model is granted (for example
   * `fleet/thermostat/commands`); the broker refuses anything else.
   */
  async subscribeTopic(filter: string, options: IClientSubscribeOptions = { qos: 1 }): Promise<void> {
    const granted = await this.client().subscribeAsync(filter, options);
    if (granted.some((grant) => grant.qos === 128)) {
      throw new SdkError('SDK_TOPIC_OUTSIDE_NAMESPACE', `the broker refused the subscription to ${filter}`);
    }
  }

  private client() {
    const client = this.connector?.mqtt;
    if (!client || !this.running) throw new SdkError(this.running ? 'SDK_NOT_CONNECTED' : 'SDK_STOPPED', 'the device is not running');
    return client;
  }

  private scoped(subtopic: string, filter: boolean): string {
    if (subtopic.length === 0 || subtopic.startsWith('/') || (!filter && /[#+]/.test(subtopic))) {
      throw new SdkError('SDK_TOPIC_OUTSIDE_NAMESPACE', `"${subtopic}" is not a topic under ${this.topicRoot}/`);
    }
    return `${this.topicRoot}/${subtopic}`;
  }

  private setState(state: DeviceState): void {
    this.current = state;
    this.emit('state', state);
  }

  /** The main loop: get a credential, connect, stay connected, back off, again. */
  private async run(): Promise<void> {
    const root = await this.options.store.root();
    this.root = root;
    const localAddress = this.options.localAddress;
    this.connector = new MqttConnector(this.options.deviceId, root, { ...(localAddress ? { localAddress } : {}), ...this.options.mqtt });
    this.connector.on('message', (topic, payload) => this.emit('message', topic, payload));
    while (this.running) {
      try {
        const credential = await this.operationalCredential();
        if (!this.running) break;
        await this.connectWith(credential);
        const reason = await this.untilLost();
        if (!this.running) break;
        // A connection the broker drops unasked looks like its node going down: the next attempt
        // goes to the next node (a refused device learns so there with CONNACK 5).
        if (reason !== undefined) this.moveOn('mqtt', reason);
        await this.wait(this.backoff.next(), 'connection lost');
      } catch (error) {
        if (!this.running) break;
        if (error instanceof Refusal) {
          this.refuse(error.code, error.message);
          break;
        }
        const reason = error instanceof Error ? error.message : String(error);
        this.emit('warning', error instanceof Error ? error : new Error(reason));
        const delay = Math.max(this.backoff.next(), error instanceof Retry ? error.notBeforeMs : 0);
        await this.wait(delay, reason);
      }
    }
  }

  private refuse(code: DeviceErrorCode, reason: string): void {
    this.running = false;
    for (const timer of this.timers) this.clock.clearTimeout(timer);
    this.timers.clear();
    void this.connector?.end(true);
    this.setState({ type: 'refused', code, reason });
    this.emit('refused', { code, reason });
  }

  /** The credential to connect with: a pending renewal first, then the operational one, else enroll. */
  private async operationalCredential(): Promise<ActiveCredential> {
    const store = this.options.store;
    for (const slot of ['pending', 'operational'] as const) {
      const stored = await store.load(slot);
      if (!stored) continue;
      const info = certificateInfo(stored.certPem);
      if (this.clock.now() > info.notAfter.getTime() + (this.options.renewalGraceMs ?? 3 * 86_400_000)) {
        await store.remove(slot); // spent beyond the server's grace: only the bootstrap credential helps
        continue;
      }
      return { stored, info, key: await this.keys.load(stored.key) };
    }
    return this.enroll();
  }

  /** First enrollment (or fallback) with the bootstrap credential. */
  private async enroll(): Promise<ActiveCredential> {
    const bootstrap = await this.options.store.load('bootstrap');
    if (!bootstrap) throw new Refusal('SDK_NOT_PROVISIONED', 'no bootstrap credential in the store');
    this.setState({ type: 'enrolling', credential: 'bootstrap' });
    const bootstrapKey = await this.keys.load(bootstrap.key);
    const key = await this.keys.generate();
    const csr = await createCsr(this.options.deviceId, key);
    const result = await this.estCall((est) => est.simpleEnroll(this.bootstrapTls(bootstrap.certPem, bootstrapKey), csr, key.spki));
    const stored: StoredCredential = { certPem: result.chainPem, key: key.stored };
    await this.options.store.save('operational', stored);
    const info = certificateInfo(result.certificate);
    this.emit('enrolled', info);
    return { stored, key, info };
  }

  /** The client of the EST endpoint in use. */
  private estClient(): EstClient {
    const url = this.estEndpoints.current;
    let client = this.estClients.get(url);
    if (!client) {
      client = new EstClient({ url, root: this.root, localAddress: this.options.localAddress });
      this.estClients.set(url, client);
    }
    return client;
  }

  /**
   * Runs an EST call on the endpoint in use and sorts its failure: retry later (on the next
   * endpoint when the node is unavailable: no answer, or a 5xx), fall back, or refused for good.
   * 408 and 429 are about this device's request, not the node: it stays.
   */
  private async estCall<T>(call: (est: EstClient) => Promise<T>): Promise<T> {
    try {
      return await call(this.estClient());
    } catch (error) {
      if (!(error instanceof SdkError)) throw error;
      const unavailable = error.code === 'SDK_NETWORK' || (error.status ?? 0) >= 500;
      if (unavailable) this.moveOn('est', error.message);
      if (unavailable || error.code === 'SDK_ENROLL_UNAVAILABLE') {
        throw new Retry(error.code, error.message, (error.retryAfterSeconds ?? 0) * 1000);
      }
      if (error.code === 'SDK_ENROLL_REJECTED') throw new Refusal(error.serverCode ?? 'SDK_REFUSED', error.message);
      throw error;
    }
  }

  /** The bootstrap credential's TLS context of the last enrollment attempt (by certificate). */
  private bootstrapContext?: { readonly certPem: string; readonly context: SecureContext };

  /**
   * The bootstrap credential as a TLS context, made once for all the attempts of an enrollment:
   * a device retrying while the server is busy would otherwise parse the root, its certificate
   * and its key again for each attempt (about 1.5 ms of CPU each time).
   */
  private bootstrapTls(certPem: string, key: DeviceKey): TlsCredential {
    if (this.bootstrapContext?.certPem !== certPem) this.bootstrapContext = { certPem, context: createSecureContext({ ca: this.root, cert: this.presented(certPem), ...key.tls }) };
    return { secureContext: this.bootstrapContext.context };
  }

  /** The certificates presented in TLS, per `presentChain`. */
  private presented(chainPem: string): string {
    return this.options.presentChain === 'leaf' ? leafOf(chainPem) : chainPem;
  }

  /**
   * The TLS context of a credential, made once: creating one parses the root, the chain and the
   * key (about a millisecond and a half with OpenSSL 3), and a device reuses its operational
   * credential for every reconnection and for the renewal request.
   */
  private contextOf(credential: ActiveCredential): SecureContext {
    credential.context ??= createSecureContext({ ca: this.root, cert: this.presented(credential.stored.certPem), ...credential.key.tls });
    return credential.context;
  }

  /** The credential as TLS presents it, with the fingerprint its TLS sessions are kept under. */
  private connectCredential(credential: ActiveCredential): { secureContext: SecureContext; fingerprint: string } {
    credential.fingerprint ??= certificateFingerprint(credential.stored.certPem);
    return { secureContext: this.contextOf(credential), fingerprint: credential.fingerprint };
  }

  /**
   * Connects to the broker endpoint in use; when its node is unavailable (no CONNACK, CONNACK 3)
   * the next attempt goes to the next endpoint; on a refusal of the device (CONNACK 5), asks the
   * EST server what is wrong with the credential, and stays.
   */
  private async connectWith(credential: ActiveCredential): Promise<void> {
    this.setState({ type: 'connecting', certificate: credential.info });
    try {
      await (this.connector as MqttConnector).connect(this.connectCredential(credential), this.mqttEndpoints.current);
    } catch (error) {
      if (!(error instanceof ConnectError)) throw error;
      const unavailable = this.brokerUnavailable(error);
      if (unavailable !== undefined) throw new Retry(error.code, unavailable);
      if (error.failure.kind !== 'refused' || error.failure.returnCode !== 5) throw new Refusal(error.code, `the broker refused the connection: ${error.failure.message}`);
      const renewed = await this.investigateRefusal(credential);
      return this.connectWith(renewed);
    }
    this.refusals = 0;
    await this.promote(credential);
    this.active = credential;
    this.setState({ type: 'connected', certificate: credential.info, certExpires: credential.info.notAfter });
    this.emit('connected', credential.info);
    this.schedule(this.options.stableAfterMs ?? 60_000, () => this.backoff.reset());
    this.scheduleRenewal(credential);
  }

  /**
   * CONNACK 5 says "not authorized" and nothing more. The EST server says why: renewing with
   * the refused credential either works (connect with the new one), or answers revoked/disabled
   * (refused for good), or says the credential is spent (enroll again with the bootstrap one).
   */
  private async investigateRefusal(credential: ActiveCredential): Promise<ActiveCredential> {
    this.refusals++;
    if (this.refusals > (this.options.maxRefusals ?? 3)) {
      throw new Refusal('CONNACK_5', 'the broker keeps refusing this device (not authorized)');
    }
    try {
      return await this.renewWith(credential);
    } catch (error) {
      if (error instanceof Refusal && FALLBACK_CODES.has(error.code)) {
        await this.options.store.remove('pending');
        await this.options.store.remove('operational');
        throw new Retry(error.code, `credential spent (${error.code}); enrolling again with the bootstrap credential`);
      }
      throw error;
    }
  }

  /** A credential that connected is the operational one from now on. */
  private async promote(credential: ActiveCredential): Promise<void> {
    const pending = await this.options.store.load('pending');
    if (pending && pending.certPem === credential.stored.certPem) {
      await this.options.store.save('operational', pending);
      await this.options.store.remove('pending');
    }
  }

  /** Renews with `credential`; the new one goes to the pending slot until a connection proves it. */
  private async renewWith(credential: ActiveCredential): Promise<ActiveCredential> {
    const key = this.options.rotateKeyOnRenewal === false ? credential.key : await this.keys.generate();
    const csr = await createCsr(this.options.deviceId, key);
    const result = await this.estCall((est) => est.simpleReenroll(this.connectCredential(credential), csr, key.spki));
    const stored: StoredCredential = { certPem: result.chainPem, key: key.stored };
    await this.options.store.save('pending', stored);
    return { stored, key, info: certificateInfo(result.certificate) };
  }

  private scheduleRenewal(credential: ActiveCredential): void {
    if (this.renewalTimer !== undefined) {
      this.clock.clearTimeout(this.renewalTimer);
      this.timers.delete(this.renewalTimer);
    }
    const delay = renewalDelay(
      { notBefore: credential.info.notBefore.getTime(), notAfter: credential.info.notAfter.getTime() },
      this.clock.now(),
      this.options.renewal ?? DEFAULT_RENEWAL,
      this.random,
    );
    this.renewalTimer = this.schedule(delay, () => void this.renew());
  }

  /** Renewal while connected: new key, simplereenroll, switch the live connection (make before break). */
  private async renew(): Promise<void> {
    const credential = this.active;
    if (!credential || !this.running || this.current.type !== 'connected') return;
    this.setState({ type: 'renewing', certificate: credential.info, certExpires: credential.info.notAfter });
    let renewed: ActiveCredential;
    try {
      renewed = await this.renewWith(credential);
    } catch (error) {
      if (error instanceof Refusal && !FALLBACK_CODES.has(error.code)) {
        this.refuse(error.code, error.message);
        return;
      }
      if (error instanceof Refusal) {
        // Spent: drop the connection; the lifecycle enrolls again with the bootstrap credential.
        await this.options.store.remove('operational');
        this.backToLifecycle(`renewal refused (${error.code})`);
        return;
      }
      this.emit('warning', error instanceof Error ? error : new Error(String(error)));
      this.setState({ type: 'connected', certificate: credential.info, certExpires: credential.info.notAfter });
      const retryIn = Math.max(1000, error instanceof Retry ? error.notBeforeMs : 0, this.backoff.next());
      this.renewalTimer = this.schedule(retryIn, () => void this.renew());
      return;
    }
    try {
      await (this.connector as MqttConnector).connect(this.connectCredential(renewed), this.mqttEndpoints.current);
    } catch (error) {
      this.emit('warning', error instanceof Error ? error : new Error(String(error)));
      const unavailable = this.brokerUnavailable(error);
      if (unavailable !== undefined) {
        // The node went away, not the new credential: it stays pending (the lifecycle connects
        // with it first), and the lifecycle goes on on the next endpoint.
        this.backToLifecycle(`the broker became unavailable during the switch to the renewed certificate: ${unavailable}`);
        return;
      }
      // The new credential did not get in: keep the old one (still valid) and try again later.
      await this.options.store.remove('pending');
      try {
        await (this.connector as MqttConnector).connect(this.connectCredential(credential), this.mqttEndpoints.current);
        this.setState({ type: 'connected', certificate: credential.info, certExpires: credential.info.notAfter });
        this.renewalTimer = this.schedule(Math.max(1000, this.backoff.next()), () => void this.renew());
      } catch (fallbackError) {
        this.brokerUnavailable(fallbackError);
        this.backToLifecycle('reconnection after a failed switch failed');
      }
      return;
    }
    await this.promote(renewed);
    this.active = renewed;
    this.setState({ type: 'connected', certificate: renewed.info, certExpires: renewed.info.notAfter });
    this.emit('renewed', renewed.info);
    this.scheduleRenewal(renewed);
  }

  /** Hands control back to the main loop (connection considered lost). */
  private backToLifecycle(reason: string): void {
    this.emit('disconnected', { reason });
    this.wakeLifecycle?.();
  }

  /**
   * Resolves when the connection is lost, with the reason (undefined when the device stops or a
   * renewal handed the connection back).
   */
  private untilLost(): Promise<string | undefined> {
    return new Promise<string | undefined>((resolve) => {
      const connector = this.connector as MqttConnector;
      // stop() may have run between the CONNACK and here.
      if (!this.running || !connector.isConnected) {
        resolve(undefined);
        return;
      }
      const done = (reason: string): void => {
        connector.off('lost', onLost);
        this.wakeLifecycle = undefined;
        if (this.renewalTimer !== undefined) this.clock.clearTimeout(this.renewalTimer);
        if (this.running) this.emit('disconnected', { reason });
        resolve(reason);
      };
      const onLost = (reason: string): void => done(reason);
      connector.on('lost', onLost);
      this.wakeLifecycle = () => {
        connector.off('lost', onLost);
        this.wakeLifecycle = undefined;
        resolve(undefined);
      };
    });
  }

  /**
   * When a failed connection attempt says the broker node is unavailable (no CONNACK: refused,
   * reset, timed out, TLS failure; or CONNACK 3), moves on to the next MQTT endpoint and returns
   * why; undefined for anything else (a refusal of this device keeps it where it is).
   */
  private brokerUnavailable(error: unknown): string | undefined {
    if (!(error instanceof ConnectError)) return undefined;
    const reason = error.failure.kind === 'network' ? error.failure.message : error.failure.returnCode === 3 ? 'the broker is unavailable (CONNACK 3)' : undefined;
    if (reason !== undefined) this.moveOn('mqtt', reason);
    return reason;
  }

  /** The endpoint of `kind` in use is unavailable: the next attempt goes to the next one, if there is another. */
  private moveOn(kind: EndpointKind, reason: string): void {
    const endpoints = kind === 'est' ? this.estEndpoints : this.mqttEndpoints;
    const from = endpoints.current;
    if (endpoints.advance()) this.emit('endpoint', { kind, from, to: endpoints.current, reason });
  }

  private wait(delayMs: number, reason: string): Promise<void> {
    if (!this.running) return Promise.resolve();
    this.setState({ type: 'backing-off', attempt: this.backoff.attempts, delayMs, reason });
    return new Promise<void>((resolve) => {
      this.wakeLifecycle = resolve;
      this.schedule(delayMs, resolve);
    });
  }

  private schedule(delayMs: number, callback: () => void): unknown {
    const handle = this.clock.setTimeout(() => {
      this.timers.delete(handle);
      callback();
    }, delayMs);
    this.timers.add(handle);
    return handle;
  }
}
