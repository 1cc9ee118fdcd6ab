import { isIPv4, isIPv6 } from 'node:net';

/**
 * The one key under which a client's read budget and stream slots are counted. An IPv4 address counts as
 * itself (IPv4-mapped IPv6, `::ffff:a.b.c.d`, as that IPv4 address, so dual-stack sockets do not give it a
 * second budget). An IPv6 address counts as its network of `ipv6Prefix` bits (a /64 by default): one
 * subscriber is usually given a whole /64 and could otherwise take a fresh budget per address.
 * Anything else (no address, a unix socket) shares one key.
 */
export function clientKey(ip: string | undefined, ipv6Prefix: number): string {
  if (!ip) return 'unknown';
  const address = ip.replace(/^\[|\]$/g, '').replace(/%.*$/, ''); // brackets, zone id
  if (isIPv4(address)) return address;
  if (!isIPv6(address)) return 'unknown';
  const groups = expandIPv6(address);
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0) {
    if (groups[5] === 0xffff)
      return `${groups[6] >> 8}.${groups[6] & 255}.${groups[7] >> 8}.${groups[7] & 255}`;
  }
  const masked = groups.map((g, i) => {
    const bits = Math.max(0, Math.min(16, ipv6Prefix - i * 16));
    return bits === 0 ? 0 : g & ((0xffff << (16 - bits)) & 0xffff);
  });
  return `${masked.map((g) => g.toString(16)).join(':')}/${ipv6Prefix}`;
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a dotted IPv4 tail converted). */
function expandIPv6(address: string): number[] {
  let text = address.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number);
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail === undefined ? [] : tail ? tail.split(':') : [];
  const zeros = tail === undefined ? [] : new Array(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((g) => parseInt(g, 16));
}
