import { EbbError, Errors } from '../errors.js'
import type { KvStore, StoreBatch } from '../state/kv-store.js'
import { metaKey } from '../state/keys.js'
import { MAX_RULES, type Topology } from './topology.js'

const SLOTS_KEY = metaKey('rules')

/**
 * Where each rule's state lives in a user's rule bits (`ruleCond`, `ruleFired`, a task's rule).
 *
 * A partition remembers which rule id owns which bit (the `mrules` key of its store, so also in
 * its changelog). A topology loaded later maps its rules to their bits by id: reordering,
 * inserting or removing rules keeps every other rule's state where it was; a new rule takes a
 * bit never used before; a removed rule's bit is retired, never given to another rule (users may
 * still hold it set). State written before this map existed used the rules' order then, which is
 * taken as the map. When a new rule finds no free bit, the start is refused: the state cannot hold
 * it, and the error says what to do.
 */
export class RuleSlots {
  /** bit of each topology rule, by rule.index */
  readonly slotOf: Int32Array
  /** rule id by bit, retired ones included */
  readonly ids: string[]
  private dirty: boolean

  private constructor (ids: string[], topology: Topology, dirty: boolean, where: string) {
    this.ids = ids
    this.slotOf = new Int32Array(topology.rules.length)
    for (const r of topology.rules) {
      let slot = ids.indexOf(r.id)
      if (slot < 0) {
        if (ids.length >= MAX_RULES) {
          throw new EbbError(Errors.RULES_INCOMPATIBLE, where, `it holds the state of ${ids.length} rules (${ids.join(', ')}), the most a user's state can, and rule ${r.id} is new`, 'Start it from an empty state directory (in Kafka mode, a new application id), or keep the topology\'s rule ids')
        }
        slot = ids.length
        ids.push(r.id)
        dirty = true
      }
      this.slotOf[r.index] = slot
    }
    this.dirty = dirty
  }

  /** The map of a partition's store: the stored one extended with the topology's new rules, or the topology's order for a new store. */
  static async load (store: KvStore, topology: Topology, where: string): Promise<RuleSlots> {
    const [stored] = await store.getMany([SLOTS_KEY])
    if (stored !== undefined) return new RuleSlots(stored.toString('utf8').split('\n').filter((x) => x !== ''), topology, false, where)
    // No map yet: a new store, or one written before rule ids were kept — whose bits followed
    // the rules' order in the file then (rules ran in file order), this file's as far as Ebb can know.
    return new RuleSlots([...topology.ruleIdsInFileOrder], topology, true, where)
  }

  /** For stores that cannot be read (tests of the evaluator alone): the topology's order. */
  static ofTopology (topology: Topology): RuleSlots {
    return new RuleSlots(topology.rules.map((r) => r.id), topology, false, '(memory)')
  }

  bit (ruleIndex: number): number { return 1 << this.slotOf[ruleIndex] }

  drain (batch: StoreBatch): void {
    if (this.dirty) batch.put(SLOTS_KEY, Buffer.from(this.ids.join('\n') + '\n', 'utf8'))
  }

  committed (): void { this.dirty = false }
}
