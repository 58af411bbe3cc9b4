import { type AddressInfo, connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { FastifyInstance } from 'fastify'
import { buildServer } from '../../src/http/server.js'
import { LineBatch } from '../../src/runtime/record-batch.js'
import { at } from '../helpers.js'
import { engine } from './helpers.js'

/** The HTTP API through fastify's inject(): no port is opened. */
describe('HTTP API', () => {
  let app: FastifyInstance
  let open: FastifyInstance
  let e: Awaited<ReturnType<typeof engine>>
  beforeAll(async () => {
    e = await engine()
    await e.pipe({ userId: 'u1', type: 'LOGIN', local: '2026-03-02T09:00' }, { userId: 'u2', type: 'LOGIN', local: '2026-03-02T10:00' })
    e.task.advanceTo(at('2026-03-10T00:00')) // both users' inactive_7d fire; each gets a task
    app = await buildServer({ engine: e.view, metrics: e.metrics, token: 's3cret' })
    open = await buildServer({ engine: e.view, metrics: e.metrics })
  })
  afterAll(async () => { await app.close(); await open.close() })
  const auth = { authorization: 'Bearer s3cret' }

  it('/healthz and /readyz answer; /readyz is 503 while the engine is not ready', async () => {
    expect((await app.inject('/healthz')).json()).toEqual({ status: 'ok' })
    expect((await app.inject('/readyz')).statusCode).toBe(200)
    e.view.setReady(false)
    const r = await app.inject('/readyz')
    expect([r.statusCode, r.json().status]).toEqual([503, 'not ready'])
    e.view.setReady(true)
  })

  it('/healthz is 503 with the reason once the process gave up (a liveness probe must not keep it)', async () => {
    const gaveUp = await buildServer({ engine: Object.assign(Object.create(e.view) as typeof e.view, { liveness: () => ({ alive: false, reason: 'gave up, exiting: the brokers could not be reached' }) }), metrics: e.metrics })
    try {
      const r = await gaveUp.inject('/healthz')
      expect([r.statusCode, r.json()]).toEqual([503, { status: 'failed', reason: 'gave up, exiting: the brokers could not be reached' }])
    } finally {
      await gaveUp.close()
    }
  })

  it('GET /users/:id returns signals, the open episode with its reasons, consent, recent alerts and tasks', async () => {
    const r = await app.inject({ url: '/users/u1', headers: auth })
    expect(r.statusCode).toBe(200)
    const u = r.json()
    expect(u.signals.daysInactive).toBe(7)
    expect(u.timezone).toBe('Asia/Shanghai')
    // model_risk alerts with inactive_7d while the partition's model warms up (docs/churn-model.md)
    expect(u.episode.rulesFired).toEqual(['inactive_7d', 'model_risk'])
    expect(u.reasons[0].code).toBe('DAYS_INACTIVE')
    expect(u.consent).toEqual({ PUSH: true, SMS: false, EMAIL: true, IN_APP: true })
    expect(u.recentAlerts.map((a: { rule: string }) => a.rule)).toEqual(['inactive_7d', 'model_risk'])
    expect(u.tasks).toHaveLength(1)
    expect(u.tasks[0].taskId === null ? u.tasks[0].holdout : u.tasks[0].taskId === u.recentAlerts[0].taskId).toBe(true)
  })

  it('a user this instance does not hold is 404; a bad or missing token is 401', async () => {
    expect((await app.inject({ url: '/users/nobody', headers: auth })).statusCode).toBe(404)
    expect((await app.inject({ url: '/users/u1' })).statusCode).toBe(401)
    expect((await app.inject({ url: '/users/u1', headers: { authorization: 'Bearer wrong!' } })).statusCode).toBe(401)
    expect((await app.inject({ url: '/alerts' })).statusCode).toBe(401)
    // Without a configured token the routes are open; /topology and /metrics never need one.
    expect((await open.inject('/users/u1')).statusCode).toBe(200)
    expect((await app.inject('/topology')).statusCode).toBe(200)
    expect((await app.inject('/metrics')).statusCode).toBe(200)
  })

  it('GET /alerts filters by since, rule and limit, and rejects a bad since', async () => {
    const all = (await app.inject({ url: '/alerts', headers: auth })).json()
    expect(all.alerts.map((a: { userId: string }) => a.userId).sort()).toEqual(['u1', 'u1', 'u2', 'u2'])
    const one = (await app.inject({ url: '/alerts?rule=inactive_7d&limit=1', headers: auth })).json()
    expect([one.alerts.length, one.truncated]).toEqual([1, true])
    const later = (await app.inject({ url: `/alerts?since=${at('2026-03-10T00:00') + 1}`, headers: auth })).json()
    expect(later.alerts).toEqual([])
    const iso = (await app.inject({ url: '/alerts?since=2026-03-09T16:00:00Z', headers: auth })).json()
    expect(iso.alerts).toHaveLength(4)
    expect((await app.inject({ url: '/alerts?since=yesterday', headers: auth })).statusCode).toBe(400)
    expect((await app.inject({ url: '/alerts?limit=0', headers: auth })).statusCode).toBe(400)
    expect((await app.inject({ url: '/alerts?colour=red', headers: auth })).statusCode).toBe(400)
  })

  it('answers every error in one shape that names what is wrong, never echoing the URL', async () => {
    const cases: Array<[string, number, string, RegExp]> = [
      ['/alerts?colour=red', 400, 'bad_request', /^unknown query parameter "colour"$/],
      ['/alerts?limit=0', 400, 'bad_request', /^limit: "0" is not an integer from 1 to 10000/],
      // decimal digits only: the validator's coercion would have read these as 16, 100, 5 and 10
      ['/alerts?limit=0x10', 400, 'bad_request', /^limit: "0x10" is not an integer/],
      ['/alerts?limit=1e2', 400, 'bad_request', /^limit: "1e2" is not an integer/],
      ['/alerts?limit=%2B5', 400, 'bad_request', /^limit: "\+5" is not an integer/],
      ['/alerts?limit=10.0', 400, 'bad_request', /^limit: "10.0" is not an integer/],
      ['/alerts?limit=10001', 400, 'bad_request', /^limit: "10001" is not an integer from 1 to 10000/],
      ['/alerts?limit=1&limit=2', 400, 'bad_request', /^query parameter "limit" is given more than once$/],
      ['/alerts?since=yesterday', 400, 'bad_request', /since: "yesterday" is neither/],
      ['/alerts?since=1773014400', 400, 'bad_request', /^since: "1773014400" is outside 2000\.\.2100.*seconds or microseconds/], // epoch seconds: would match every alert
      ['/alerts?since=1773014400000000', 400, 'bad_request', /outside 2000\.\.2100/], // microseconds
      ['/alerts?since=1999-12-31T23:59:59Z', 400, 'bad_request', /outside 2000\.\.2100/],
      ['/alerts?rule=nope', 400, 'bad_request', /^rule: "nope" is not a rule of this topology \(its rules: consumption_drop, inactive_31d, inactive_7d, model_risk, unfollow_burst\)$/],
      ['/alerts?since=2026-03-09T16:00:00', 400, 'bad_request', /with its offset/], // a local time: no server-zone guess
      ['/alerts?since=2026-02-30T00:00:00Z', 400, 'bad_request', /with its offset/], // not rolled over to March
      ['/users/nobody', 404, 'not_found', /no state for this user/],
      ['/users/u1?x=1', 400, 'bad_request', /^unknown query parameter "x"$/],
      // every route: those that take none say so too
      ['/topology?x=1', 400, 'bad_request', /^unknown query parameter "x"$/],
      ['/healthz?x=1', 400, 'bad_request', /^unknown query parameter "x"$/],
      ['/metrics?x=1', 400, 'bad_request', /^unknown query parameter "x"$/],
      ['/users/u-secret-42%', 400, 'bad_request', /^the URL does not decode/], // the router's own refusals, same shape
      ['/users/u-secret-42%FF%FE', 400, 'bad_request', /^the URL does not decode/],
      [`/users/u-secret-42${'x'.repeat(5000)}`, 414, 'uri_too_long', /^a path parameter is longer/],
      ['/no/such/route/u-secret-42', 404, 'not_found', /^no such route/]
    ]
    for (const [url, status, error, message] of cases) {
      const r = await app.inject({ url, headers: auth })
      expect([url, r.statusCode, Object.keys(r.json()).sort(), r.json().error]).toEqual([url, status, ['error', 'message'], error])
      expect(r.json().message).toMatch(message)
      expect(r.body).not.toContain('u-secret-42')
    }
  })

  it('parses no request body: a POST of broken JSON to a GET-only route is 404, a body past the limit 413', async () => {
    const post = async (url: string, contentType: string, payload: string): Promise<[number, string]> => {
      const r = await app.inject({ method: 'POST', url, headers: { ...auth, 'content-type': contentType }, payload })
      return [r.statusCode, r.json().error]
    }
    expect(await post('/alerts', 'application/json', '{broken')).toEqual([404, 'not_found'])
    expect(await post('/users/u1', 'application/x-www-form-urlencoded', 'a=1')).toEqual([404, 'not_found'])
    expect(await post('/alerts', 'application/json', 'x'.repeat(1_100_000))).toEqual([413, 'payload_too_large'])
    // a GET with a body is served; the body is not read as anything
    const r = await app.inject({ method: 'GET', url: '/alerts?limit=1', headers: { ...auth, 'content-type': 'application/json' }, payload: '{broken' })
    expect([r.statusCode, r.json().alerts.length]).toEqual([200, 1])
  })

  it('gives every time of a user as epoch millis, like the output records', async () => {
    const u = (await app.inject({ url: '/users/u1', headers: auth })).json()
    expect(u.asOf).toBe(at('2026-03-10T00:00'))
    expect(u.episode.openedAt).toBe(at('2026-03-10T00:00'))
    expect(typeof u.tasks[0].sendAt).toBe('number')
    expect(u.recentAlerts[0].firedAt).toBe(u.episode.openedAt)
  })

  it('GET /topology lists rules, plans and the experiment', async () => {
    const t = (await app.inject('/topology')).json()
    expect(t.rules.map((r: { id: string }) => r.id)).toContain('inactive_7d')
    expect(t.rules.find((r: { id: string }) => r.id === 'model_risk').enabled).toBe(true)
    expect(t.model).toMatch(/^online-logistic-[0-9a-f]{12}$/)
    expect(t.rules.find((r: { id: string }) => r.id === 'model_risk').when[0]).toEqual({ signal: 'churnScore', op: '>=', threshold: null, chosen: 'set to alert before inactive_7d within 1.5 points of its precision' })
    // what the one partition learned so far: nothing labelled yet, still warming up
    expect(t.learned).toHaveLength(1)
    expect(t.learned[0]).toMatchObject({ partition: 0, labelledDays: 0, thresholds: [{ rule: 'model_risk', warmingUp: true }] })
    expect(Object.keys(t.learned[0].coefficients)).toEqual(['intercept', 'silenceSurprise', 'daysInactive', 'fullWeek', 'recentSurprise', 'loginRate', 'beyondLongestGap', 'loginTrend', 'viewDrop', 'unfollowRatio', 'interactionDrop', 'logDaysInactive', 'logSilenceSurprise', 'steepViewDrop', 'steepInteractionDrop'])
    expect(t.plans.length).toBeGreaterThanOrEqual(10)
    expect(t.experiment).toEqual({ name: 'recall-2026', holdoutShare: 0.1 })
  })

  it('serves /metrics in the Prometheus text format with the engine\'s counters', async () => {
    const r = await app.inject('/metrics')
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(r.body).toMatch(/^ebb_events_processed_total\{type="LOGIN",outcome="applied"\} 2$/m)
    expect(r.body).toMatch(/^ebb_alerts_total\{rule="inactive_7d"\} 2$/m)
    expect(r.body).toMatch(/^ebb_records_total 2$/m)
    expect(r.body).toMatch(/^ebb_timers_fired_total \d+$/m)
    expect(r.body).not.toMatch(/u1|u2/) // no user ids in labels
  })

  it('describes every route in OpenAPI at /docs', async () => {
    const doc = (await app.inject('/docs/json')).json()
    expect(Object.keys(doc.paths).sort()).toEqual(['/alerts', '/healthz', '/metrics', '/readyz', '/topology', '/users/{id}'])
    expect(doc.paths['/users/{id}'].get.security).toEqual([{ bearer: [] }])
    expect((await app.inject('/docs/')).statusCode).toBe(200)
  })

  it('answers a request id, and takes the caller\'s', async () => {
    const r = await app.inject({ url: '/healthz', headers: { 'x-request-id': 'trace-42' } })
    expect(r.headers['x-request-id']).toBe('trace-42')
    const generated = (await app.inject('/healthz')).headers['x-request-id']
    expect(generated).toMatch(/^[0-9a-f-]{36}$/)
    // an unbounded or odd caller id is not taken (it would be logged as is)
    for (const bad of ['x'.repeat(10_000), 'a b', 'evil\u0007']) {
      const r2 = await app.inject({ url: '/healthz', headers: { 'x-request-id': bad } })
      expect(r2.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
    }
  })

  it('serves user ids up to the contract\'s 256 characters, after the auth check', async () => {
    const long = 'L'.repeat(256)
    expect((await app.inject({ url: `/users/${long}` })).statusCode).toBe(401)
    const r = await app.inject({ url: `/users/${long}`, headers: auth })
    expect(r.statusCode).toBe(404)
    await e.pipe({ userId: long, type: 'LOGIN', local: '2026-03-09T09:00' })
    const found = await app.inject({ url: `/users/${long}`, headers: auth })
    expect([found.statusCode, found.json().userId]).toEqual([200, long])
  })

  it('after an ERASE (a userId is all it needs) serves nothing of the user: no state, no recent alerts or tasks', async () => {
    expect((await app.inject({ url: '/alerts', headers: auth })).json().alerts.some((a: { userId: string }) => a.userId === 'u2')).toBe(true)
    await e.task.process(new LineBatch(['{"userId":"u2","type":"ERASE","tz":"Not/AZone","ts":"garbage"}'], 'http-test', 1))
    expect(e.task.stats.usersErased).toBe(1)
    expect((await app.inject({ url: '/users/u2', headers: auth })).statusCode).toBe(404)
    const alerts = (await app.inject({ url: '/alerts', headers: auth })).json().alerts as Array<{ userId: string }>
    expect(alerts.length).toBeGreaterThan(0)
    expect(alerts.some((a) => a.userId === 'u2')).toBe(false)
    expect(e.recent.tasks.toArray().some((t) => t.userId === 'u2')).toBe(false)
  })
})

/** What Node's HTTP parser refuses never reaches a route (inject() cannot send it): a real socket on 127.0.0.1. */
describe('HTTP API: requests refused before routing', () => {
  it('answers a malformed request line and oversized headers in the one error shape, and closes the connection', async () => {
    const e = await engine()
    const app = await buildServer({ engine: e.view, metrics: e.metrics })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const port = (app.server.address() as AddressInfo).port
    const send = async (request: string): Promise<string> => await new Promise((resolve, reject) => {
      let got = ''
      const s = connect(port, '127.0.0.1', () => { s.write(request) })
      s.on('data', (b) => { got += b.toString() })
      s.on('error', reject)
      s.on('close', () => { resolve(got) })
    })
    try {
      const cases: Array<[string, number, string, string]> = [
        ['FOO /topology HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'Bad Request', 'bad_request'],
        [`GET /topology HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'Request Header Fields Too Large', 'headers_too_large'],
        // Node closed a CONNECT without a word, and answered an unknown Expect with an empty 417
        ['CONNECT /alerts HTTP/1.1\r\nHost: x\r\n\r\n', 405, 'Method Not Allowed', 'method_not_allowed'],
        ['GET /topology HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\nConnection: close\r\n\r\n', 417, 'Expectation Failed', 'expectation_failed']
      ]
      for (const [request, status, text, error] of cases) {
        const answer = await send(request)
        expect(answer.split('\r\n')[0]).toBe(`HTTP/1.1 ${status} ${text}`)
        const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: string, message: string }
        expect([Object.keys(body).sort(), body.error]).toEqual([['error', 'message'], error])
      }
    } finally {
      await app.close()
    }
  })
})
