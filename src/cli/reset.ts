import { existsSync, rmSync } from 'node:fs'
import { EbbError, Errors } from '../errors.js'
import { changelogTopic, loadRunConfig } from '../kafka/config.js'
import { kafkaCommand } from '../kafka/client-errors.js'
import { PlatformaticClient } from '../kafka/platformatic-client.js'
import { requireOption } from './args.js'
import { commandHelp, COMMANDS, parseCommand } from './commands.js'

/**
 * `ebb reset`: an application starts over (Kafka Streams' kafka-streams-application-reset, plus
 * its cleanUp() of the local state). Refused while any instance runs: moving a live group's
 * offsets or deleting the changelog under it would leave state and offsets disagreeing.
 */
export async function reset (argv: string[]): Promise<number> {
  const o = parseCommand(COMMANDS.reset, argv)
  if (o.help === true) { process.stdout.write(commandHelp(COMMANDS.reset)); return 0 }
  const c = loadRunConfig(requireOption('reset', 'config', o.config))
  const to = o.to === undefined ? null : Date.parse(o.to)
  if (to !== null && Number.isNaN(to)) throw new EbbError(Errors.USAGE, `ebb reset: --to "${o.to ?? ''}" is not an ISO-8601 instant (like 2026-03-01T00:00:00Z)`)
  await kafkaCommand(c.brokers, 'ebb reset', async () => {
    const admin = await new PlatformaticClient(c, `${c.applicationId}-reset`).admin()
    try {
      const members = await admin.groupMemberCount(c.applicationId)
      if (members > 0) throw new EbbError(Errors.RESET_GROUP_ACTIVE, c.applicationId, members)
      const topics = await admin.topics()
      if (!topics.has(c.topics.input)) throw new EbbError(Errors.USAGE, `ebb reset: no input topic "${c.topics.input}" on ${c.brokers.join(',')}`)
      const offsets = to === null ? await admin.startOffsets(c.topics.input) : await admin.offsetsForTime(c.topics.input, to)
      await admin.setGroupOffsets(c.applicationId, c.topics.input, offsets)
      const where = [...offsets].sort((a, b) => a[0] - b[0]).map(([p, off]) => `${p}@${off}`).join(' ')
      process.stdout.write(`group ${c.applicationId}: offsets on ${c.topics.input} set to ${to === null ? 'the start' : new Date(to).toISOString()} (${where})\n`)
      const changelog = changelogTopic(c)
      if (topics.has(changelog)) {
        await admin.deleteTopics([changelog])
        process.stdout.write(`changelog ${changelog} deleted (created empty at the next start${c.topics.createIfAbsent ? '' : ': createIfAbsent is off, create it before starting'})\n`)
      } else process.stdout.write(`changelog ${changelog}: none\n`)
    } finally {
      await admin.close()
    }
  })
  if (existsSync(c.stateDir)) { rmSync(c.stateDir, { recursive: true, force: true }); process.stdout.write(`state directory ${c.stateDir} removed on this host; remove the other hosts' too before they start\n`) }
  return 0
}
