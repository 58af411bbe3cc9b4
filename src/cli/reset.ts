import { existsSync, readdirSync, rmdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { EbbError, Errors } from '../errors.js'
import { changelogTopic, loadRunConfig } from '../kafka/config.js'
import { claimStateDir, instanceIdFile, pidFile } from '../kafka/instance-id.js'
import { kafkaCommand } from '../kafka/client-errors.js'
import { PlatformaticClient } from '../kafka/platformatic-client.js'
import { instantOption, requireOption } from './args.js'
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
  // Read as every other instant option is (epoch millis, or ISO-8601 with its offset and a real
  // calendar date): Date.parse took "12" for December 2001 and a date without offset in this
  // machine's zone, on the one command that moves offsets and deletes state.
  const to = instantOption('reset', 'to', o.to) ?? null
  await kafkaCommand(c.brokers, 'ebb reset', async () => {
    const admin = await new PlatformaticClient(c, `${c.applicationId}-reset`).admin()
    try {
      const members = await admin.groupMemberCount(c.applicationId)
      if (members > 0) throw new EbbError(Errors.RESET_GROUP_ACTIVE, c.applicationId, members)
      // Nor under an `ebb run` of this application on this host that has no group member (one
      // still retrying to reach the brokers): the state directory is claimed before anything moves.
      process.once('exit', claimStateDir(c.stateDir, c.applicationId))
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
  const { removed, kept } = removeStores(c.stateDir, c.topics.input, c.applicationId)
  if (removed.length > 0) process.stdout.write(`state removed on this host: ${removed.join(', ')} in ${c.stateDir}${kept.length > 0 ? ` (left there, not Ebb's: ${kept.slice(0, 5).join(', ')}${kept.length > 5 ? ', …' : ''})` : ''}; remove the other hosts' too before they start\n`)
  return 0
}

/**
 * Removes this application's partition stores (`<input>-<partition>`, what `ebb run` creates) and
 * its instance id from the state directory, and the directory once empty; nothing else. A `stateDir` set to a
 * directory that holds other things (`.`, a home directory, `/`) loses nothing but Ebb's stores.
 */
function removeStores (stateDir: string, input: string, applicationId: string): { removed: string[], kept: string[] } {
  if (!existsSync(stateDir)) return { removed: [], kept: [] }
  const literal = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const store = new RegExp(`^(${literal(input)}-\\d+(\\.corrupt)?|${literal(instanceIdFile(applicationId))}|${literal(pidFile(applicationId))})$`)
  const removed: string[] = []
  const kept: string[] = []
  for (const entry of readdirSync(stateDir)) {
    if (!store.test(entry)) { kept.push(entry); continue }
    rmSync(join(stateDir, entry), { recursive: true, force: true })
    if (entry !== pidFile(applicationId)) removed.push(entry) // (this command's own claim: not news)
  }
  if (kept.length === 0) rmdirSync(stateDir)
  return { removed, kept }
}
