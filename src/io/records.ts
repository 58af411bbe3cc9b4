import type { ResponseTier, ValueTier } from '../signals/signals.js'
import type { DeadLetterReason } from '../errors.js'

/** Output records, field for field the Avro schemas in schemas/ (schemas/ and README). Times are epoch millis. */
export interface Reason {
  code: string
  signal: string
  value: number
  op: string
  threshold: number
  text: string
}

export interface AlertRecord {
  alertId: string
  userId: string
  episodeId: string
  rule: string
  firedAt: number
  score: number | null
  reasons: Reason[]
  churnType: string | null
  valueTier: ValueTier
  responseTier: ResponseTier
  arm: 'TREATMENT' | 'HOLDOUT' | null
  decision: 'TASK' | 'HOLDOUT' | 'NO_CONSENT' | 'CAPPED' | 'DEFERRED' | 'WINBACK' | 'ALREADY_TASKED' | null
  taskId: string | null
}

export interface RecallTaskRecord {
  taskId: string
  userId: string
  episodeId: string
  alertId: string
  planId: string
  churnType: string
  valueTier: string
  channel: 'PUSH' | 'SMS' | 'EMAIL' | 'IN_APP'
  title: string | null
  body: string
  link: string | null
  sendAt: number
  expiresAt: number
  attributionWindowHours: number
  experiment: string
  arm: 'TREATMENT' | 'HOLDOUT'
}

export interface OutcomeRecord {
  taskId: string
  userId: string
  planId: string
  channel: string
  sentAt: number
  recalledAt: number
  cycleTimeMs: number
}

export interface DeadLetterSource {
  topic: string | null
  partition: number | null
  offset: string | null
  file: string | null
  line: number | null
}

export interface DeadLetterRecord {
  reason: DeadLetterReason
  code: string
  detail: string
  /** the input bytes, base64: all of them, or the first ones when rawSha256 is set */
  raw: string
  source: DeadLetterSource
  /** the input's length in bytes */
  rawBytes: number
  /** set when raw is only a prefix: the SHA-256 (hex) of the whole input */
  rawSha256: string | null
}
