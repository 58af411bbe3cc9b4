import type avsc from 'avsc'
import { loadAvroType } from '../events/avro.js'
import { EbbError, Errors } from '../errors.js'
import { isKnownZone, zoneClock } from '../time/zones.js'
import { AvroWriter } from './avro-writer.js'
import { COUNTS_LENGTH, NEVER_DAY, OFF_ACTIVE, OFF_RECENT, OFF_SPELL, RECENT_ID_WORDS, RECENT_IDS, SPELL_WORDS, STATE_VERSION, type TaskEntry, UserState } from './user-state.js'

/** The stored form of UserState: ebb.UserState in Avro (schemas/user-state.avsc). */
interface StoredState {
  v: number
  tz: string
  firstDay: number
  lastEventTs: number
  headDay: number
  lastLoginTs: number
  lastLoginDay: number
  lastPurchaseDay: number
  followCount: number
  loginBits: number
  activeBits: Buffer
  counts: number[]
  purchases: number[]
  messages: number[]
  recentIds: Buffer
  recentPos: number
  ruleCond: number
  ruleFired: number
  episodeOpenTs: number
  timerDue: number
  churnScore: number | null
  consentRevoked: number
  consentGranted: number
  tasks: TaskEntry[]
  spellDay: number
  spellFirst: number
  spellScored: number
  spellResolved: number
  spellMax: number
  spell: Buffer
}

let type: avsc.Type | undefined
function stateType (): avsc.Type {
  if (type === undefined) type = loadAvroType('user-state.avsc')
  return type
}

/**
 * States written by an earlier layout are read through Avro schema resolution from that layout's
 * schema (schemas/history/): fields added since take their defaults. The version is the record's
 * first field, an int in every layout, so it is read before the schema is chosen.
 */
const olderTypes = new Map<number, avsc.Type>()
function readerFor (v: number): avsc.Type {
  if (v === STATE_VERSION) return stateType()
  let t = olderTypes.get(v)
  if (t === undefined) {
    if (v !== 2) throw new Error(`layout version ${v}, this Ebb reads versions 2 and ${STATE_VERSION}`)
    const writer = loadAvroType(`history/user-state-v${v}.avsc`)
    const resolver = stateType().createResolver(writer)
    t = { fromBuffer: (b: Buffer) => stateType().fromBuffer(b, resolver, true) } as unknown as avsc.Type
    olderTypes.set(v, t)
  }
  return t
}

/** The zig-zag varint at the start of a record: the layout version. */
function layoutVersion (buf: Buffer): number {
  let n = 0
  let shift = 0
  for (let i = 0; i < 5 && i < buf.length; i++) {
    const b = buf[i]
    n |= (b & 0x7f) << shift
    if ((b & 0x80) === 0) return (n >>> 1) ^ -(n & 1)
    shift += 7
  }
  return -1
}

/**
 * Count rings are mostly zeros, so they are stored run-length encoded: a negative item -n
 * stands for n zeros. A typical user's 143 counters take 10–40 bytes.
 */
function packCounts (counts: Uint16Array): number[] {
  const out: number[] = []
  let zeros = 0
  for (let i = 0; i < COUNTS_LENGTH; i++) {
    const c = counts[i]
    if (c === 0) { zeros++; continue }
    if (zeros > 0) { out.push(-zeros); zeros = 0 }
    out.push(c)
  }
  if (zeros > 0) out.push(-zeros)
  return out
}

function unpackCounts (packed: number[], into: Uint16Array): void {
  let i = 0
  for (const x of packed) {
    if (x < 0) i -= x
    else into[i++] = x
  }
  if (i !== COUNTS_LENGTH) throw new Error(`counts hold ${i} slots, expected ${COUNTS_LENGTH}`)
}

/**
 * Sparse (day, …) tuples are stored with the day as "days before headDay": one byte instead of
 * three. Purchase amounts are already integer cents (two or three bytes instead of a double's eight).
 */
function relativeDays (tuples: number[], width: number, head: number): number[] {
  const out = tuples.slice()
  for (let i = 0; i < out.length; i += width) out[i] = head - tuples[i]
  return out
}

const absoluteDays = relativeDays // the same map: day ↔ head − day

function writeTuples (w: AvroWriter, tuples: number[], width: number, head: number): void {
  w.reserveVarints(tuples.length + 2)
  if (tuples.length > 0) {
    w.long(tuples.length)
    for (let i = 0; i < tuples.length; i++) w.long(i % width === 0 ? head - tuples[i] : tuples[i])
  }
  w.long(0)
}

/** The counts ring, run-length packed (see packCounts), written without building the array. */
function writeCounts (w: AvroWriter, counts: Uint16Array): void {
  w.reserveVarints(COUNTS_LENGTH + 2)
  let items = 0
  let zeros = 0
  for (let i = 0; i < COUNTS_LENGTH; i++) {
    if (counts[i] === 0) { zeros++; continue }
    if (zeros > 0) { items++; zeros = 0 }
    items++
  }
  if (zeros > 0) items++
  if (items > 0) {
    w.long(items)
    zeros = 0
    for (let i = 0; i < COUNTS_LENGTH; i++) {
      const c = counts[i]
      if (c === 0) { zeros++; continue }
      if (zeros > 0) { w.long(-zeros); zeros = 0 }
      w.long(c)
    }
    if (zeros > 0) w.long(-zeros)
  }
  w.long(0)
}

const writer = new AvroWriter()
/** A zone id as an Avro string (length + UTF-8), encoded once per zone. */
const zoneBytes = new Map<string, Buffer>()

function encodedZone (id: string): Buffer {
  let b = zoneBytes.get(id)
  if (b === undefined) {
    const w = new AvroWriter()
    w.reset(16)
    w.string(id)
    b = w.take()
    zoneBytes.set(id, b)
  }
  return b
}

/** Bytes of the fixed-size fields (varints at their longest, the bit ring, the union): checked once. */
const FIXED_FIELDS_CAPACITY = 256

/**
 * ebb.UserState as Avro binary, written field by field in schema order (the flush path: no
 * intermediate record). encodeStateWithAvsc builds the same bytes through avsc, for tests.
 */
export function encodeState (s: UserState): Buffer {
  writeState(s)
  return writer.take()
}

/** The encoding as a view into a reused buffer, valid until the next encode (the commit path). */
export function encodeStateView (s: UserState): Buffer {
  writeState(s)
  return writer.view()
}

function writeState (s: UserState): void {
  const w = writer
  w.reset(FIXED_FIELDS_CAPACITY)
  w.long(STATE_VERSION)
  w.raw(encodedZone(s.zone.id))
  w.long(s.firstDay)
  w.long(s.lastEventTs)
  w.long(s.headDay)
  w.long(s.lastLoginTs)
  w.long(s.lastLoginDay)
  w.long(s.lastPurchaseDay)
  w.long(s.followCount)
  w.long(s.loginBits)
  w.u16AsFixed(s.words, OFF_ACTIVE, 6)
  writeCounts(w, s.words)
  writeTuples(w, s.purchases, 2, s.headDay)
  writeTuples(w, s.messages, 3, s.headDay)
  w.ensure(FIXED_FIELDS_CAPACITY)
  w.u16AsBytes(s.words, OFF_RECENT, RECENT_ID_WORDS * RECENT_IDS)
  w.long(s.recentPos)
  w.long(s.ruleCond)
  w.long(s.ruleFired)
  w.long(s.episodeOpenTs)
  w.long(s.timerDue)
  if (s.churnScore === null) w.long(0)
  else { w.long(1); w.double(s.churnScore) }
  w.long(s.consentRevoked)
  w.long(s.consentGranted)
  writeTasks(w, s.tasks)
  w.ensure(FIXED_FIELDS_CAPACITY)
  w.long(s.spellDay)
  w.long(s.spellFirst)
  w.long(s.spellScored)
  w.long(s.spellResolved)
  w.long(s.spellMax)
  if (s.spellDay === NEVER_DAY) w.long(0)
  else w.u16AsBytes(s.words, OFF_SPELL, SPELL_WORDS)
}

function writeTasks (w: AvroWriter, tasks: TaskEntry[]): void {
  if (tasks.length > 0) {
    w.ensure(10)
    w.long(tasks.length)
    for (const t of tasks) {
      w.ensure(80)
      w.long(t.episodeTs)
      w.string(t.planId)
      w.ensure(80)
      w.long(t.step)
      w.long(t.rule)
      w.long(t.channel)
      w.long(t.flags)
      w.long(t.sendAt)
      w.long(t.attributionHours)
      w.long(t.churnType)
    }
  }
  w.ensure(10)
  w.long(0)
}

/** Little-endian on every platform, so a state directory or changelog moves between machines. */
/** n uint16 words from `from`, little-endian (the learner's stored recent alerts use it too). */
export function wordsLE (words: Uint16Array, from: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n * 2)
  for (let i = 0; i < n; i++) b.writeUInt16LE(words[from + i], i * 2)
  return b
}

/** The reference encoding through avsc: the same bytes as encodeState (checked by a test). */
export function encodeStateWithAvsc (s: UserState): Buffer {
  const stored: StoredState = {
    v: STATE_VERSION,
    tz: s.zone.id,
    firstDay: s.firstDay,
    lastEventTs: s.lastEventTs,
    headDay: s.headDay,
    lastLoginTs: s.lastLoginTs,
    lastLoginDay: s.lastLoginDay,
    lastPurchaseDay: s.lastPurchaseDay,
    followCount: s.followCount,
    loginBits: s.loginBits,
    activeBits: wordsLE(s.words, OFF_ACTIVE, 6),
    counts: packCounts(s.words),
    purchases: relativeDays(s.purchases, 2, s.headDay),
    messages: relativeDays(s.messages, 3, s.headDay),
    recentIds: wordsLE(s.words, OFF_RECENT, RECENT_ID_WORDS * RECENT_IDS),
    recentPos: s.recentPos,
    ruleCond: s.ruleCond,
    ruleFired: s.ruleFired,
    episodeOpenTs: s.episodeOpenTs,
    timerDue: s.timerDue,
    churnScore: s.churnScore,
    consentRevoked: s.consentRevoked,
    consentGranted: s.consentGranted,
    tasks: s.tasks.map((t) => ({ ...t })),
    spellDay: s.spellDay,
    spellFirst: s.spellFirst,
    spellScored: s.spellScored,
    spellResolved: s.spellResolved,
    spellMax: s.spellMax,
    spell: s.spellDay === NEVER_DAY ? Buffer.alloc(0) : wordsLE(s.words, OFF_SPELL, SPELL_WORDS)
  }
  return stateType().toBuffer(stored)
}

export function decodeState (userId: string, buf: Buffer): UserState {
  let d: StoredState
  try {
    d = readerFor(layoutVersion(buf)).fromBuffer(buf) as StoredState
    if (!isKnownZone(d.tz)) throw new Error(`unknown zone ${d.tz}`)
  } catch (err) {
    throw new EbbError(Errors.STATE_CORRUPT, (err as Error).message)
  }
  const s = new UserState(userId, zoneClock(d.tz))
  s.firstDay = d.firstDay
  s.lastEventTs = d.lastEventTs
  s.headDay = d.headDay
  s.lastLoginTs = d.lastLoginTs
  s.lastLoginDay = d.lastLoginDay
  s.lastPurchaseDay = d.lastPurchaseDay
  s.followCount = d.followCount
  s.loginBits = d.loginBits
  // Copy, never view: the Buffers avsc returns may share one pooled ArrayBuffer.
  for (let i = 0; i < 6; i++) s.words[OFF_ACTIVE + i] = d.activeBits.readUInt16LE(i * 2)
  unpackCounts(d.counts, s.words)
  if (d.purchases.length > 0) s.purchases = absoluteDays(d.purchases, 2, d.headDay)
  if (d.messages.length > 0) s.messages = absoluteDays(d.messages, 3, d.headDay)
  if (d.recentIds.length === 2 * RECENT_ID_WORDS * RECENT_IDS) {
    for (let i = 0; i < RECENT_ID_WORDS * RECENT_IDS; i++) s.words[OFF_RECENT + i] = d.recentIds.readUInt16LE(i * 2)
    s.recentPos = d.recentPos
  } else if (d.v === 2 && d.recentIds.length === 4 * RECENT_IDS) {
    // layout 2 kept 32-bit hashes: they cannot become 64-bit ones; the ring starts empty (a
    // duplicate of one of the user's last 8 events, delivered across the upgrade, passes)
    s.recentPos = 0
  } else throw new EbbError(Errors.STATE_CORRUPT, `recentIds holds ${d.recentIds.length} bytes`)
  s.ruleCond = d.ruleCond
  s.ruleFired = d.ruleFired
  s.episodeOpenTs = d.episodeOpenTs
  s.timerDue = d.timerDue
  s.churnScore = d.churnScore
  s.consentRevoked = d.consentRevoked
  s.consentGranted = d.consentGranted
  s.spellDay = d.spellDay
  s.spellFirst = d.spellFirst
  s.spellScored = d.spellScored
  s.spellResolved = d.spellResolved
  s.spellMax = d.spellMax
  if (d.spell.length > 0) {
    // 15 words: written before the record kept the score of the reference's day (the 16th: none,
    // 0x8000, which is spell.ts's REF_Z_NONE as a uint16).
    if (d.spell.length !== 2 * SPELL_WORDS && d.spell.length !== 2 * (SPELL_WORDS - 1)) throw new EbbError(Errors.STATE_CORRUPT, `spell holds ${d.spell.length} bytes`)
    for (let i = 0; i < SPELL_WORDS; i++) s.words[OFF_SPELL + i] = 2 * i < d.spell.length ? d.spell.readUInt16LE(i * 2) : 0x8000
  }
  if (d.tasks.length > 0) s.tasks = d.tasks.map((t) => ({ episodeTs: t.episodeTs, planId: t.planId, step: t.step, rule: t.rule, channel: t.channel, flags: t.flags, sendAt: t.sendAt, attributionHours: t.attributionHours, churnType: t.churnType }))
  return s
}
