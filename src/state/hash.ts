/**
 * The 32-bit hashes Ebb uses for ids (arms, task ids, eventIds, training splits): FNV-1a over
 * UTF-16 code units, and murmur3's finaliser where every bit must mix. One definition: a task id
 * or an arm that changed between versions would resend a task or move a user between arms.
 */
export const FNV_OFFSET = 0x811c9dc5
export const FNV_PRIME = 0x01000193

/** FNV-1a of `text`, starting from `basis` (FNV's offset basis, or it xor a seed); unsigned. */
export function fnv1a32 (text: string, basis = FNV_OFFSET): number {
  let h = basis
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), FNV_PRIME)
  return h >>> 0
}

/** murmur3's 32-bit finaliser: every input bit reaches every output bit. */
export function fmix32 (h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

const HEX_BYTE = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

/** An unsigned 32-bit number as 8 lowercase hex digits (a table per byte: 5× toString(16).padStart on the task-id path). */
export function hex32 (n: number): string {
  return HEX_BYTE[n >>> 24] + HEX_BYTE[(n >>> 16) & 255] + HEX_BYTE[(n >>> 8) & 255] + HEX_BYTE[n & 255]
}
