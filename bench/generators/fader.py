# An independent population: users who fade out (logins and viewing decay over weeks before they
# stop) among steady users with weekly rhythms and occasional breaks. Written apart from Ebb's simulators.
# Usage: python3 bench/generators/fader.py SEED USERS DAYS CHURN_RATE OUT_DIR
# Writes OUT_DIR/events.jsonl (time-ordered, the JSON event contract) and OUT_DIR/labels.jsonl
# (userId, churned, churnAt = the churner's last LOGIN); then: ebb eval --in OUT_DIR/events.jsonl
# --labels OUT_DIR/labels.jsonl --out OUT_DIR/eval (docs/populations.md, "Outside the project's simulator").
import math, os, random, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from population_io import DAY, T0, arguments, write_population

seed, users, days, churn, out, extra = arguments()
rnd=random.Random(seed)
zones=['UTC','Europe/London','America/Chicago','Asia/Kolkata']
off={'UTC':0,'Europe/London':0,'America/Chicago':-6,'Asia/Kolkata':5.5}
ev=[]; labels=[]
for i in range(users):
    u=f'f{seed}-{i}'; tz=rnd.choice(zones)
    base=rnd.uniform(0.35,0.95)
    wk=[min(0.99,max(0.02,base*rnd.uniform(0.6,1.3))) for _ in range(7)]  # weekday profile
    views=rnd.uniform(2,12)
    churns=rnd.random()<churn
    start=rnd.randint(-20,days-5)  # decay start (may begin before the stream)
    tau=rnd.uniform(5,20)          # decay time constant (days)
    brk=set()
    if rnd.random()<0.3:
        b=rnd.randint(0,days-1); L=rnd.randint(3,9)
        brk=set(range(b,b+L))
    last=None; n=0
    for d in range(days):
        dow=(d+3)%7
        p=wk[dow]; v=views
        if churns and d>=start:
            f=math.exp(-(d-start)/tau)
            if f<0.08: break  # gone
            p*=f; v*=f**0.7
        if d in brk or rnd.random()>p: continue
        h=rnd.gauss(13,4)
        t=T0+d*DAY+int((min(23.7,max(0.2,h))-off[tz])*3600000)+rnd.randint(0,59999)
        ev.append({'eventId':f'{u}-{n}','userId':u,'type':'LOGIN','ts':t,'tz':tz}); n+=1; last=t
        for k in range(max(0,int(rnd.gauss(v,1.5)))):
            t+=rnd.randint(3000,240000)
            ev.append({'eventId':f'{u}-{n}','userId':u,'type':'VIEW','ts':t,'tz':tz,'targetId':f'v{rnd.randint(1,80000)}','durationMs':rnd.randint(800,120000)}); n+=1
        if rnd.random()<0.15:
            t+=rnd.randint(1000,60000)
            ev.append({'eventId':f'{u}-{n}','userId':u,'type':'INTERACT','ts':t,'tz':tz,'targetId':f'p{rnd.randint(1,9000)}'}); n+=1
    churned = bool(churns and last is not None)
    labels.append({'userId':u,'churned':churned,'churnAt':last if churned else None,'lastLoginTs':last})
write_population(out, ev, labels)
