# An independent population: steady daily users (login most days, rare vacations) of whom some
# stop abruptly, without any decline first. Written apart from Ebb's simulators.
# Usage: python3 bench/generators/steady.py SEED USERS DAYS CHURN_RATE OUT_DIR [VACATIONS_PER_USER_MONTH=0.02]
# Writes OUT_DIR/events.jsonl (time-ordered, the JSON event contract) and OUT_DIR/labels.jsonl
# (userId, churned, churnAt = the churner's last LOGIN); then: ebb eval --in OUT_DIR/events.jsonl
# --labels OUT_DIR/labels.jsonl --out OUT_DIR/eval (docs/populations.md, "Outside the project's simulator").
import math, os, random, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from population_io import DAY, T0, arguments, write_population

seed, users, days, churn, out, extra = arguments()
vac_rate=float(extra[0]) if extra else 0.02  # chance per user-month of a vacation
rnd=random.Random(seed)
zones=['UTC','Europe/Berlin','America/New_York','Asia/Tokyo']
off={'UTC':0,'Europe/Berlin':1,'America/New_York':-5,'Asia/Tokyo':9}
ev=[]; labels=[]
for i in range(users):
    u=f's{seed}-{i}'; tz=rnd.choice(zones)
    p=min(0.99, max(0.6, rnd.betavariate(12,1.2)))
    churns = rnd.random()<churn
    stop = rnd.randint(5, days-1) if churns else None
    # vacations: intervals of 4-12 days
    vac=set()
    d=0
    while d<days:
        if rnd.random()<vac_rate/30:
            L=rnd.randint(4,12)
            for k in range(d,d+L): vac.add(k)
            d+=L
        d+=1
    last=None; n=0
    for d in range(days):
        if stop is not None and d>=stop: break
        if d in vac or rnd.random()>p: continue
        hour=rnd.gauss(19,2.5)
        t=T0+d*DAY+int((min(23.5,max(6,hour))-off[tz])*3600000)+rnd.randint(0,59999)
        ev.append({'eventId':f'{u}-{n}','userId':u,'type':'LOGIN','ts':t,'tz':tz}); n+=1; last=t
        for v in range(rnd.randint(1,8)):
            t+=rnd.randint(5000,200000)
            ev.append({'eventId':f'{u}-{n}','userId':u,'type':'VIEW','ts':t,'tz':tz,'targetId':f'v{rnd.randint(1,50000)}','durationMs':rnd.randint(1000,90000)}); n+=1
    churned = churns and last is not None and (T0+days*DAY - last) > 0
    labels.append({'userId':u,'churned':bool(churned),'churnAt':last if churned else None,'lastLoginTs':last})
write_population(out, ev, labels)
