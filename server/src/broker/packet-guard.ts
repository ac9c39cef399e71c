import type { Client } from 'aedes';

/** The part of mqtt-packet's parser the guard reads (aedes 1.x keeps it on `client._parser`, and the client on `parser.client`). */
interface ParserLike {
  parse(buffer: Buffer): number;
  packet: { length: number };
  client: Client;
}

/** Guards one client's parser (see {@link createPacketGuard}). */
export type PacketGuard = (client: Client) => void;

/**
 * Closes a connection as soon as a packet header announces more than `maxBytes`, before the body
 * is buffered. aedes has no packet size limit, and mqtt-packet buffers a whole packet (up to
 * 256 MB) before handing it over. Relies on aedes 1.x internals (`client._parser`,
 * `parser.client`); the test suite checks the limit end to end, so an aedes upgrade that moves
 * them fails loudly.
 *
 * One guarded `parse` per broker, set on each client's parser, instead of a bound function and a
 * closure per connection: the parser is `this`, and aedes gives it its client.
 */
export function createPacketGuard(maxBytes: number, onTooLarge: (client: Client, size: number) => void): PacketGuard {
  let parse: ParserLike['parse'] | undefined;
  function guardedParse(this: ParserLike, buffer: Buffer): number {
    const remaining = (parse as ParserLike['parse']).call(this, buffer);
    if (this.packet.length > maxBytes) {
      onTooLarge(this.client, this.packet.length);
      this.client.close();
      return 0;
    }
    return remaining;
  }
  return (client) => {
    const parser = (client as unknown as { _parser?: ParserLike })._parser;
    if (!parser || typeof parser.parse !== 'function' || parser.client !== client) throw new Error('aedes internals changed: client._parser or its client is missing');
    // The prototype's parse, the same for every parser (mqtt-packet's Parser class).
    if (parse === undefined) parse = parser.parse;
    else if (parser.parse !== parse) throw new Error('aedes internals changed: parsers with different parse methods');
    parser.parse = guardedParse;
  };
}
