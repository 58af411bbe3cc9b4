/**
 * The one error registry (fastify-style). Every error Ebb raises or writes to the dead-letter
 * output has a code here, with whether retrying can help, the process exit code when it ends a
 * command, and a message that tells the user what to fix. docs/errors.md lists the same codes;
 * test/unit/errors.test.ts keeps the two in step.
 */
/** Why a record went to the dead letters: the one list (schemas/dead-letter.avsc, metrics and docs follow it). */
export const DEAD_LETTER_REASONS = ['undecodable', 'invalid', 'late', 'duplicate', 'processing', 'too_large', 'future', 'erased'] as const
export type DeadLetterReason = typeof DEAD_LETTER_REASONS[number]

export interface ErrorDefinition {
  readonly code: string
  readonly retriable: boolean
  /** exit code when this error ends a command: 2 = usage/config, 1 = runtime failure */
  readonly exitCode: 1 | 2
  /** set for errors that route a record to the dead-letter output */
  readonly deadLetter?: DeadLetterReason
  /** human text; `%s` placeholders are filled with the arguments in order */
  readonly message: string
}

function def (code: string, exitCode: 1 | 2, retriable: boolean, message: string, deadLetter?: DeadLetterReason): ErrorDefinition {
  return Object.freeze({ code, exitCode, retriable, message, deadLetter })
}

export const Errors = Object.freeze({
  USAGE: def('EBB_USAGE', 2, false, '%s'),
  CONFIG_INVALID: def('EBB_CONFIG_INVALID', 2, false, 'configuration %s: %s'),
  TOPOLOGY_INVALID: def('EBB_TOPOLOGY_INVALID', 2, false, '%s: %s'),
  INPUT_NOT_FOUND: def('EBB_INPUT_NOT_FOUND', 2, false, 'cannot read %s: %s. Check the path.'),
  INPUT_COMPRESSED: def('EBB_INPUT_COMPRESSED', 2, false, '%s is gzip-compressed: decompress it first (%s)'),
  OUTPUT_NOT_WRITABLE: def('EBB_OUTPUT_NOT_WRITABLE', 2, false, 'cannot write to %s: %s. Check the directory exists and is writable.'),
  EVENT_UNDECODABLE: def('EBB_EVENT_UNDECODABLE', 1, false, 'the record could not be decoded: %s. Producers must send ebb.UserEvent (schemas/user-event.avsc) as Avro, or one JSON object per line in files.', 'undecodable'),
  EVENT_INVALID: def('EBB_EVENT_INVALID', 1, false, 'the event breaks the event contract (README, "The event contract"): %s', 'invalid'),
  EVENT_LATE: def('EBB_EVENT_LATE', 1, false, 'the event time %s is older than the watermark minus the grace period (%s); raise time.grace in the topology if such late data is expected', 'late'),
  EVENT_DUPLICATE: def('EBB_EVENT_DUPLICATE', 1, false, 'eventId was already seen for this user', 'duplicate'),
  EVENT_TOO_LARGE: def('EBB_EVENT_TOO_LARGE', 1, false, 'the record is %s bytes, above the %s-byte limit: no event is that large (a concatenated or binary input?). Its first bytes, length and SHA-256 are kept; raise `ebb replay --max-line-bytes` if such lines are real', 'too_large'),
  EVENT_UNCONFIRMED: def('EBB_EVENT_UNCONFIRMED', 1, false, 'the input ended while this event, dated %s, waited for a later event to confirm its time (%s); %s', 'future'),
  EVENT_FUTURE: def('EBB_EVENT_FUTURE', 1, false, 'the event time %s is too far ahead of %s (the limit is %s in the topology): a clock or unit error would move stream time and make every later event late. Fix the producer\'s clock or units, or raise that limit if events really arrive this far ahead', 'future'),
  EVENT_ERASED: def('EBB_EVENT_ERASED', 1, false, 'this event, dated %s, is from before the user\'s ERASE (%s): it is not used to rebuild them', 'erased'),
  EVENT_PROCESSING: def('EBB_EVENT_PROCESSING', 1, false, 'processing the event failed: %s. This is a bug in Ebb; please report it with the dead-letter record.', 'processing'),
  STATE_CORRUPT: def('EBB_STATE_CORRUPT', 1, false, 'the stored state of a user could not be decoded: %s. The state directory may come from another Ebb version; remove it to rebuild state.'),
  STORE_IO: def('EBB_STORE_IO', 1, true, 'the state store failed: %s. Check the disk under the state directory (space, permissions).'),
  RESTORE_BEHIND: def('EBB_RESTORE_BEHIND', 1, true, 'partition %s: the state restored from the changelog has seen the input up to offset %s, but the group has committed %s, and the changelog\'s tail stayed hidden for %s s (a transaction left open by a producer that died hides it until the broker aborts it; a hanging one, which no coordinator owns, Ebb aborts after hangingTransactionTimeout). The partition is not opened on a state that would miss records; it is tried again at its next batch or assignment'),
  STATE_AHEAD: def('EBB_STATE_AHEAD', 1, false, 'partition %s: the state restored from the changelog has seen the input up to offset %s, but %s. The state belongs to input the group no longer has: start the application over with `ebb reset --config F` (group offsets, changelog and local state), or point topics.input back at the topic the state was built from'),
  CHANGELOG_LOST: def('EBB_CHANGELOG_LOST', 1, false, 'partition %s: the local state has applied the changelog %s up to offset %s, but the changelog ends at %s: it was deleted and created again, or truncated, so it no longer holds the state, and another instance (or this one on an empty state directory) would restore users without theirs. Start the application over with `ebb reset --config F` (group offsets, changelog and local state); the changelog is Ebb\'s own topic, not one to delete by hand'),
  KAFKA_CONSUMER_FAILED: def('EBB_KAFKA_CONSUMER_FAILED', 1, true, 'the Kafka consumer stopped and does not restart by itself (%s); `ebb run` starts its Kafka clients again from the last commit, retrying for retryTimeout'),
  KAFKA_UNREACHABLE: def('EBB_KAFKA_UNREACHABLE', 1, true, 'the brokers %s could not be reached for %s s (retryTimeout): %s. Check that they run and that this host can reach them (address, port, TLS/SASL settings); a restart tries again'),
  RUN_STALLED: def('EBB_RUN_STALLED', 1, true, 'no input partition was processed for %s s (retryTimeout): %s. The brokers answered; the log says why each attempt failed. A restart tries again'),
  SCHEMA_REGISTRY_UNAVAILABLE: def('EBB_SCHEMA_REGISTRY_UNAVAILABLE', 1, true, 'the schema registry could not answer for %s s (retryTimeout): %s. The records that need it waited (they were not dead-lettered); check the registry and this host\'s access to it; a restart resumes from the last commit'),
  SCHEMA_REGISTRY_AUTH: def('EBB_SCHEMA_REGISTRY_AUTH', 1, false, 'the schema registry %s refused the credentials (HTTP %s). Set them in schemaRegistryUrl (https://user:password@host) or EBB_SCHEMA_REGISTRY_USER_INFO (user:password)'),
  KAFKA_REQUEST_FAILED: def('EBB_KAFKA_REQUEST_FAILED', 1, true, 'the brokers %s did not answer %s (%s). Check that they run and that this host can reach them (address, port, TLS/SASL settings), then run the command again'),
  KAFKA_AUTH: def('EBB_KAFKA_AUTH', 2, false, 'the brokers %s refused the SASL credentials (%s). Check sasl.mechanism, sasl.username and EBB_SASL_PASSWORD (or the broker\'s users); retrying would not change the answer'),
  KAFKA_DENIED: def('EBB_KAFKA_DENIED', 2, false, 'the brokers %s refused %s (%s). Grant this instance\'s principal what Ebb needs (README, "ACLs"): Read on the input topic and the group, Write on the output and changelog topics, Write on its transactional id (its instanceId), Describe on all of them, Create on the topics when topics.createIfAbsent; retrying would not change the answer'),
  KAFKA_REJECTED: def('EBB_KAFKA_REJECTED', 2, false, 'the brokers %s rejected %s (%s). %s; retrying would not change the answer'),
  RESET_GROUP_ACTIVE: def('EBB_RESET_GROUP_ACTIVE', 2, false, 'the group %s is running (members: %s): stop every `ebb run` of this applicationId before `ebb reset` (it moves their offsets and deletes their changelog)'),
  RESTORE_STALLED: def('EBB_RESTORE_STALLED', 1, true, 'restoring %s partition %s read nothing for %s s (at offset %s of %s). The partition is opened again at its next assignment or batch; check the broker and that the changelog topic is readable.'),
  SINK_WRITE: def('EBB_SINK_WRITE', 1, true, 'writing output failed: %s'),
  STATE_LOCKED: def('EBB_STATE_LOCKED', 2, false, 'the state directory %s is in use by another Ebb process (%s). Stop it, or give this one its own --state directory.'),
  RULES_INCOMPATIBLE: def('EBB_RULES_INCOMPATIBLE', 2, false, 'the state in %s cannot take this topology: %s. %s.'),
  MODEL_INVALID: def('EBB_MODEL_INVALID', 2, false, 'the churn model file %s %s. Point `model:` in the topology at a file written by `ebb train`.'),
  HTTP_LISTEN: def('EBB_HTTP_LISTEN', 2, false, 'the HTTP API cannot listen on %s: %s. %s')
} as const)

export type ErrorName = keyof typeof Errors

function format (message: string, args: readonly unknown[]): string {
  let i = 0
  return message.replace(/%s/g, () => (i < args.length ? String(args[i++]) : '%s'))
}

export class EbbError extends Error {
  readonly code: string
  readonly retriable: boolean
  readonly exitCode: 1 | 2
  readonly deadLetter?: DeadLetterReason

  constructor (definition: ErrorDefinition, ...args: unknown[]) {
    super(format(definition.message, args))
    this.name = 'EbbError'
    this.code = definition.code
    this.retriable = definition.retriable
    this.exitCode = definition.exitCode
    this.deadLetter = definition.deadLetter
  }
}

export function isEbbError (err: unknown): err is EbbError {
  return err instanceof EbbError
}
