import { FleetDevice, MemoryCredentialStore, SdkError, type DeviceState } from '@fleetgate/device-sdk';
import type { FactoryCredential } from './credentials.ts';
import { encodePayload, type DeviceProfile, type ProfileIo } from './profiles.ts';
import type { RunRecorder } from './recorder.ts';

/** Everything one runner (the main thread, or one worker) needs. */
export interface RunnerSettings {
  readonly devices: readonly FactoryCredential[];
  readonly rootPem: string;
  /** Given to every device: one URL, or the nodes of a cluster. */
  readonly estUrls: readonly string[];
  readonly mqttUrls: readonly string[];
  /** Devices started per second (Infinity: all at once). */
  readonly ratePerSecond: number;
  readonly sourceAddresses: readonly string[];
  readonly profiles: ReadonlyMap<string, DeviceProfile>;
  /** Reconnect backoff of the simulated devices. */
  readonly backoff: { readonly initialMs: number; readonly maxMs: number; readonly multiplier: number };
  /** MQTT persistent sessions (clean session off): the broker keeps subscriptions and queues QoS 1 messages while a device is away. */
  readonly persistentSessions?: boolean;
  /** Keep the number of every QoS 1 message acknowledged (PUBACK), per device (--export-acks). */
  readonly recordAcks?: boolean;
}

/** One simulated device and what the runner knows of it. */
interface SimDevice {
  readonly credential: FactoryCredential;
  readonly device: FleetDevice;
  readonly startedAt: number;
  enrolledAt?: number;
  connectedAt?: number;
  lastConnectedAt?: number;
  disconnectedAt?: number;
  /** The MQTT endpoint of the device's last connection. */
  connectedTo?: string;
  refusedAt?: number;
  connectsAfterRefusal: number;
  stopTraffic?: () => void;
  /** Messages published so far: the last message's number (its payload carries it). */
  sequence: number;
  /** Numbers of the QoS 1 messages the broker acknowledged (when recorded). */
  readonly acknowledged: number[];
}

/** Error code of anything a device reports. */
function codeOf(error: unknown): string {
  if (error instanceof SdkError) return error.serverCode ?? error.code;
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'DEVICE_WARNING';
}

/**
 * Runs simulated devices through the real lifecycle with the device SDK, exactly as firmware
 * would: bootstrap credential in a store, FleetDevice, profile traffic once connected.
 */
export class FleetRunner {
  readonly sims: SimDevice[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly settings: RunnerSettings,
    private readonly recorder: RunRecorder,
  ) {}

  /**
   * Starts the devices at the configured rate; resolves when all are started, or when
   * `deadline` (performance.now(), ms) passes first: the devices not started by then never are.
   */
  async startAll(deadline = Number.POSITIVE_INFINITY): Promise<void> {
    const { devices, ratePerSecond } = this.settings;
    const began = performance.now();
    let index = 0;
    while (index < devices.length && !this.stopped && performance.now() < deadline) {
      const due = Number.isFinite(ratePerSecond) ? Math.min(devices.length, Math.floor(((performance.now() - began) / 1000) * ratePerSecond) + 1) : devices.length;
      // Bounded batches keep the event loop responsive even when everything is due at once.
      for (let started = 0; index < due && started < 250; started++, index++) this.startDevice(devices[index] as FactoryCredential, index);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  private startDevice(credential: FactoryCredential, index: number): void {
    const addresses = this.settings.sourceAddresses;
    const device = new FleetDevice({
      deviceId: credential.id,
      estUrl: this.settings.estUrls,
      mqttUrl: this.settings.mqttUrls,
      store: this.storeFor(credential),
      backoff: this.settings.backoff,
      localAddress: addresses.length > 1 ? addresses[index % addresses.length] : undefined,
      // fleetgate's listeners hold the issuing CAs: presenting the leaf only makes every TLS
      // context cheaper for thousands of devices (a third-party broker needs them in its CA file).
      presentChain: 'leaf',
      ...(this.settings.persistentSessions ? { mqtt: { clean: false } } : {}),
    });
    const sim: SimDevice = { credential, device, startedAt: performance.now(), connectsAfterRefusal: 0, sequence: 0, acknowledged: [] };
    this.sims.push(sim);
    const recorder = this.recorder;
    device.on('enrolled', () => {
      sim.enrolledAt = performance.now();
      recorder.counters.enrolled++;
      recorder.enroll.add(sim.enrolledAt - sim.startedAt);
    });
    device.on('connected', () => {
      const now = performance.now();
      recorder.counters.connects++;
      if (sim.refusedAt !== undefined) sim.connectsAfterRefusal++;
      sim.lastConnectedAt = now;
      const endpoint = device.endpoint.mqtt;
      if (sim.connectedTo !== undefined && sim.connectedTo !== endpoint) recorder.counters.failovers++;
      sim.connectedTo = endpoint;
      if (sim.connectedAt === undefined) {
        sim.connectedAt = now;
        recorder.counters.connected++;
        recorder.connect.add(now - (sim.enrolledAt ?? sim.startedAt));
        this.startTraffic(sim);
      }
    });
    device.on('disconnected', () => {
      sim.disconnectedAt = performance.now();
    });
    device.on('endpoint', ({ kind }) => recorder.counters[kind === 'est' ? 'estMoves' : 'mqttMoves']++);
    device.on('renewed', () => recorder.counters.renewed++);
    device.on('refused', ({ code }) => {
      sim.refusedAt = performance.now();
      recorder.counters.refused++;
      recorder.error(code);
    });
    device.on('warning', (error) => recorder.error(codeOf(error)));
    void device.start();
  }

  private startTraffic(sim: SimDevice): void {
    const profile = this.settings.profiles.get(sim.credential.model);
    if (!profile) return;
    const recorder = this.recorder;
    const io: ProfileIo = {
      publish: (subtopic, content, qos) => {
        if (this.stopped || sim.device.state.type === 'refused' || sim.device.state.type === 'stopped') return;
        recorder.counters.messagesSent++;
        const seq = ++sim.sequence;
        const sent = performance.now();
        sim.device.publish(subtopic, encodePayload(content, seq), { qos }).then(
          () => {
            recorder.counters.messagesAcknowledged++;
            if (qos !== 1) return;
            recorder.publishAck.add(performance.now() - sent);
            if (this.settings.recordAcks) sim.acknowledged.push(seq);
          },
          (error: unknown) => {
            recorder.counters.messagesFailed++;
            recorder.error(`PUBLISH_${codeOf(error)}`);
          },
        );
      },
      every: (ms, action) => {
        const timer = setInterval(action, Math.max(10, ms));
        timer.unref();
        this.timers.add(timer);
      },
      after: (ms, action) => {
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          action();
        }, Math.max(0, ms));
        timer.unref();
        this.timers.add(timer);
      },
      random: Math.random,
    };
    sim.stopTraffic = profile.run(sim.device, io);
  }

  private readonly stores = new Map<string, MemoryCredentialStore>();

  /** A device's store: the bootstrap slot, or for MQTT-only runs the operational slot. */
  private storeFor(credential: FactoryCredential): MemoryCredentialStore {
    const stored = { certPem: credential.certPem, key: credential.keyPem };
    const store = new MemoryCredentialStore(this.settings.rootPem, credential.kind === 'operational' ? undefined : stored);
    if (credential.kind === 'operational') void store.save('operational', stored);
    this.stores.set(credential.id, store);
    return store;
  }

  /** The operational credentials the devices hold now (for --export-credentials). */
  async operationalCredentials(): Promise<FactoryCredential[]> {
    const out: FactoryCredential[] = [];
    for (const sim of this.sims) {
      const stored = await this.stores.get(sim.credential.id)?.load('operational');
      if (stored) out.push({ id: sim.credential.id, model: sim.credential.model, certPem: stored.certPem, keyPem: stored.key, kind: 'operational' });
    }
    return out;
  }

  /** The numbers of the QoS 1 messages each device got a PUBACK for, in order (with `recordAcks`). */
  acknowledged(): Record<string, number[]> {
    return Object.fromEntries(this.sims.map((sim) => [sim.credential.id, [...sim.acknowledged].sort((a, b) => a - b)]));
  }

  /** Devices by SDK state right now. */
  states(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const { device } of this.sims) counts[device.state.type] = (counts[device.state.type] ?? 0) + 1;
    return counts;
  }

  /** Devices connected right now to each MQTT endpoint (every one given, 0 included). */
  connectedPerNode(): Record<string, number> {
    const counts: Record<string, number> = Object.fromEntries(this.settings.mqttUrls.map((url) => [url, 0]));
    for (const { device } of this.sims) {
      const { type } = device.state;
      if (type === 'connected' || type === 'renewing') counts[device.endpoint.mqtt] = (counts[device.endpoint.mqtt] ?? 0) + 1;
    }
    return counts;
  }

  /** Whether every device is connected (or refused for good). */
  settled(): boolean {
    return this.sims.length === this.settings.devices.length && this.sims.every(({ device }) => isSettled(device.state));
  }

  /**
   * Stops traffic and every device (connections closed, in-flight QoS 1 flushed), within
   * `timeoutMs`: a device still stopping then (its server does not answer) is closed by force,
   * and the stop waits no longer for it. Returns how many had to be forced.
   */
  async stop(timeoutMs = Number.POSITIVE_INFINITY): Promise<{ readonly forced: number }> {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const sim of this.sims) sim.stopTraffic?.();
    const pending = new Set(this.sims.map(({ device }) => device));
    const graceful = Promise.all(this.sims.map(({ device }) => device.stop().catch(() => undefined).finally(() => pending.delete(device))));
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<'timeout'>((resolve) => {
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => resolve('timeout'), Math.max(0, timeoutMs));
    });
    const outcome = await Promise.race([graceful, bound]);
    clearTimeout(timer);
    if (outcome !== 'timeout') return { forced: 0 };
    const forced = pending.size;
    // Forced: the sockets are destroyed; nothing is awaited (a request in flight ends on its own timeout).
    for (const device of pending) void device.stop(true).catch(() => undefined);
    return { forced };
  }

  /** Devices not started (the deadline came first). */
  notStarted(): number {
    return this.settings.devices.length - this.sims.length;
  }
}

function isSettled(state: DeviceState): boolean {
  return state.type === 'connected' || state.type === 'refused';
}
