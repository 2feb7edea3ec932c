/**
 * Stable hashes of actor addresses: the same on every process, platform and release (unlike any
 * runtime-provided string hash), so an actor's placement survives restarts.
 */

/**
 * FNV-1a, 32 bits, over the UTF-8 bytes of `s`. Stable across processes, platforms and releases
 * (unlike any runtime-provided string hash), so placement survives restarts.
 */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, 0x01000193);
    } else {
      // Rare (addresses are ASCII): hash the UTF-8 bytes of the rest of the string.
      for (const b of Buffer.from(s.slice(i), 'utf8')) h = Math.imul(h ^ b, 0x01000193);
      break;
    }
  }
  return h >>> 0;
}

/**
 * FNV-1a followed by the murmur3 finaliser. Plain FNV-1a's low bits depend only on the low bits of
 * the input bytes (the multiply carries upwards only), and `% P` looks at the low bits; the
 * finaliser mixes every input bit into them so that similar addresses spread over partitions.
 */
export function stableHash32(s: string): number {
  let h = fnv1a32(s);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The partition of an actor address ("group:GD…", "verify:book"), in [0, partitions). */
export function partitionOf(address: string, partitions: number): number {
  return stableHash32(address) % partitions;
}

