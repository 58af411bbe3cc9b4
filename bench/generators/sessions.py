# An independent population: users as a renewal process of sessions (gamma-distributed gaps, daily
# to weekly, some weekend-only), joining all along the history or before it, some leaving within
# their first weeks. Churners disengage over their last sessions: the gaps stretch, sessions get
# shallower, and the social ones unfollow the creators they follow. Written apart from Ebb's
# simulators and from the other generators here (no generative code shared).
# Usage: python3 bench/generators/sessions.py SEED USERS DAYS CHURN_RATE OUT_DIR
# Writes OUT_DIR/events.jsonl (time-ordered, the JSON event contract) and OUT_DIR/labels.jsonl
# (userId, churned, churnAt = the churner's last LOGIN); then: ebb eval --in OUT_DIR/events.jsonl
# --labels OUT_DIR/labels.jsonl --out OUT_DIR/eval (docs/populations.md, "Outside the project's simulator").
import os, random, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from population_io import DAY, T0, arguments, write_population

seed, users, days, churn, out, extra = arguments()
rnd = random.Random(seed)
zones = [('America/Sao_Paulo', -3), ('Australia/Sydney', 10), ('Europe/Paris', 1), ('Asia/Singapore', 8), ('UTC', 0)]
HOUR = 3600000
ev = []
labels = []


def local_day_hour(t, off):
    x = t + off * HOUR
    return x // DAY, (x % DAY) / HOUR


for i in range(users):
    u = f'r{seed}-{i}'
    tz, off = rnd.choice(zones)
    kind = rnd.random()
    if kind < 0.55:
        mean_gap = rnd.uniform(0.7, 1.6)   # near-daily
    elif kind < 0.85:
        mean_gap = rnd.uniform(2.0, 4.5)   # every few days
    else:
        mean_gap = rnd.uniform(5.0, 8.0)   # about weekly
    weekend = kind >= 0.85 and rnd.random() < 0.5
    shape = rnd.uniform(1.5, 4.0)          # regularity of the gaps
    depth = rnd.uniform(1.5, 9.0)          # views per session
    social = rnd.random() < 0.4
    # 35% were users before the stream starts (their first session falls in the first gap), the
    # others join on a uniform day of the history.
    joined_before = rnd.random() < 0.35
    start = rnd.uniform(0, mean_gap) if joined_before else rnd.uniform(0, days - 3)
    churns = rnd.random() < churn
    early_leaver = churns and not joined_before and rnd.random() < 0.3
    if churns:
        # the session at which disengagement starts, and how fast it goes
        end_day = rnd.uniform(start + 3, days + 40) if not early_leaver else start + rnd.uniform(2, 20)
        fade_sessions = rnd.randint(2, 8)
        stretch = rnd.uniform(1.15, 1.7)
    else:
        end_day = float('inf')
    n = 0
    t_day = start
    follows = []
    fading = 0
    last_login = None
    gap_mean = mean_gap
    gone = False
    while t_day < days:
        if churns and t_day >= end_day:
            fading += 1
            if fading > fade_sessions:
                gone = True
                break
            gap_mean *= stretch
        h = min(23.5, max(0.3, rnd.gauss(19 if kind >= 0.55 else 12, 3.5)))
        d0 = int(t_day)
        if weekend:
            # move to the next Saturday or Sunday (2026-01-01 was a Thursday: day % 7 == 2 is a Saturday)
            while (d0 % 7) not in (2, 3):
                d0 += 1
            if d0 >= days:
                break
        t = T0 + d0 * DAY + int((h - off) * HOUR) + rnd.randint(0, 59999)
        if t >= T0 + days * DAY or t < T0:
            t_day = d0 + rnd.gammavariate(shape, gap_mean / shape) + 0.3
            continue
        ev.append({'eventId': f'{u}-{n}', 'userId': u, 'type': 'LOGIN', 'ts': t, 'tz': tz}); n += 1
        last_login = t
        if not follows or rnd.random() < 0.08:
            for _ in range(rnd.randint(6, 20) if not follows else 1):
                c = f'c{rnd.randint(1, 5000)}'
                t += rnd.randint(1000, 20000)
                follows.append(c)
                ev.append({'eventId': f'{u}-{n}', 'userId': u, 'type': 'FOLLOW', 'ts': t, 'tz': tz, 'targetId': c}); n += 1
        shallow = 0.6 ** fading
        for _ in range(max(0, int(rnd.gauss(depth * shallow, 1.2)))):
            t += rnd.randint(5000, 300000)
            ev.append({'eventId': f'{u}-{n}', 'userId': u, 'type': 'VIEW', 'ts': t, 'tz': tz, 'targetId': f'm{rnd.randint(1, 60000)}', 'durationMs': rnd.randint(2000, 200000)}); n += 1
        if rnd.random() < 0.25 * shallow:
            t += rnd.randint(2000, 90000)
            ev.append({'eventId': f'{u}-{n}', 'userId': u, 'type': 'INTERACT', 'ts': t, 'tz': tz, 'targetId': f'k{rnd.randint(1, 20000)}'}); n += 1
        if social and fading > 0 and follows:
            for _ in range(min(len(follows), rnd.randint(1, max(1, len(follows) // 2)))):
                c = follows.pop(rnd.randrange(len(follows)))
                t += rnd.randint(1000, 20000)
                ev.append({'eventId': f'{u}-{n}', 'userId': u, 'type': 'UNFOLLOW', 'ts': t, 'tz': tz, 'targetId': c}); n += 1
        t_day = d0 + max(0.25, rnd.gammavariate(shape, gap_mean / shape))
        if d0 == int(t_day):
            t_day = d0 + 1 + rnd.random()  # at most one session a day: the next one is another day
    # A churner whose decline runs past the end of the history has not churned in it.
    churned = gone and last_login is not None
    labels.append({'userId': u, 'churned': churned, 'churnAt': last_login if churned else None, 'lastLoginTs': last_login})
write_population(out, ev, labels)
