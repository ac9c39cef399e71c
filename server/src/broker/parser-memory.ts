import type { Client, ConnectPacket } from 'aedes';
import { BufferList } from 'bl';

/** What BufferList's append takes. */
type Appendable = Parameters<InstanceType<typeof BufferList>['append']>[0];

/**
 * The fields of mqtt-packet's parser (9.x) that this module replaces. The parser reads its
 * pending bytes through `_list` (append, consume, slice, readUInt8/16/32, toString, length),
 * its state names through `_states`, and `settings.protocolVersion` / `settings.bridgeMode`.
 */
interface ParserFields {
  _list: unknown;
  _states: readonly string[];
  settings: Readonly<{ protocolVersion?: number; bridgeMode?: boolean }>;
}

/**
 * A BufferList whose first buffer starts a one-element array: BufferList pushes onto `[]`, which
 * gives the array room for 17 (152 bytes), which shift() leaves in place when the list empties
 * again, on every idle connection. Only the buffer-like branch of `append` is taken
 * here (the parser appends the socket's Buffers); anything else goes to BufferList's own.
 */
class PacketBytes extends BufferList {
  override append(buffer: Appendable): this {
    const list = this as unknown as { _bufs: Buffer[]; length: number };
    if (list._bufs.length > 0 || !(buffer instanceof Uint8Array)) return super.append(buffer);
    // What BufferList does with a Buffer or Uint8Array: a Buffer view of the same memory.
    list._bufs = [Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength)];
    list.length += buffer.byteLength;
    return this;
  }
}

/** What a parser's settings are before CONNECT (mqtt-packet: `opt || {}`, a new object per parser). */
const NO_SETTINGS: Readonly<{ protocolVersion?: number }> = Object.freeze({});

/** mqtt-packet's parser states, in its order; never written by the parser, so one array serves all. */
const STATES: readonly string[] = Object.freeze(['_parseHeader', '_parseLength', '_parsePayload', '_newPacket']);

/** The client's parser when it is mqtt-packet 9's as aedes 1.2 makes it; otherwise undefined. */
function parserOf(client: Client): ParserFields | undefined {
  const parser = (client as unknown as { _parser?: ParserFields })._parser;
  if (!parser || typeof parser !== 'object' || !('_list' in parser) || !Array.isArray(parser._states) || parser._states.join() !== STATES.join()) return undefined;
  return parser;
}

/**
 * Slims the parser aedes made for a new client, before it has read anything. mqtt-packet keeps
 * the bytes of a packet not yet complete in `bl()`, a BufferListStream: a readable-stream Duplex
 * (its WritableState, ReadableState, their buffers and bound callbacks) that the parser never
 * uses as a stream. The plain BufferList of the same package has the same methods. The list of
 * state names, and the empty settings before CONNECT, are the same for every parser. Measured with 2,000 held connections (npm run
 * bench:memory): see docs/benchmarks.md, "Memory per held connection".
 */
export function slimParser(client: Client): boolean {
  const parser = parserOf(client);
  // Another mqtt-packet: a saving, not a feature, so it is skipped (the broker says so once).
  if (!parser) return false;
  parser._list = new PacketBytes();
  parser._states = STATES;
  parser.settings = NO_SETTINGS;
  return true;
}

/** One settings object per protocol version (and bridge mode), shared by every parser. */
const SETTINGS = new Map<string, Readonly<{ protocolVersion: number; bridgeMode?: boolean }>>();

/**
 * After CONNECT mqtt-packet keeps the whole CONNECT packet as its parser's `settings` (client
 * id, username, password buffer, will) for the rest of the connection, and reads only its
 * protocol version and bridge mode from it. A shared object with those two lets the packet go.
 * Called from preConnect, once the parser has set it.
 */
export function forgetConnectPacket(client: Client, packet: ConnectPacket): void {
  const parser = parserOf(client);
  if (!parser || parser.settings !== packet) return;
  const version = packet.protocolVersion ?? 4;
  const bridgeMode = (packet as ConnectPacket & { bridgeMode?: boolean }).bridgeMode === true;
  const key = `${version}${bridgeMode ? 'b' : ''}`;
  let settings = SETTINGS.get(key);
  if (!settings) {
    settings = Object.freeze(bridgeMode ? { protocolVersion: version, bridgeMode } : { protocolVersion: version });
    SETTINGS.set(key, settings);
  }
  parser.settings = settings;
}
