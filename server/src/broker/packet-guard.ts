import type { Client } from 'aedes';

/** The part of mqtt-packet's parser the guard reads (aedes 1.x keeps it on `client._parser`). */
interface ParserLike {
  parse(buffer: Buffer): number;
  packet: { length: number };
}

/**
 * Closes a connection as soon as a packet header announces more than `maxBytes`, before the body
 * is buffered. aedes has no packet size limit, and mqtt-packet buffers a whole packet (up to
 * 256 MB) before handing it over. Relies on aedes 1.x internals (`client._parser`); the test
 * suite checks the limit end to end, so an aedes upgrade that moves them fails loudly.
 */
export function guardPacketSize(client: Client, maxBytes: number, onTooLarge: (size: number) => void): void {
  const parser = (client as unknown as { _parser?: ParserLike })._parser;
  if (!parser || typeof parser.parse !== 'function') throw new Error('aedes internals changed: client._parser is missing');
  const parse = parser.parse.bind(parser);
  parser.parse = (buffer: Buffer): number => {
    const remaining = parse(buffer);
    if (parser.packet.length > maxBytes) {
      onTooLarge(parser.packet.length);
      client.close();
      return 0;
    }
    return remaining;
  };
}
