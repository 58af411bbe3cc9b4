# What the generators share: their command line and how they write a population. The generative
# code (who logs in when, who churns and how) is each generator's own.
import json, os, sys

T0 = 1767225600000  # 2026-01-01 UTC: the first day of every generated history
DAY = 86400000


def arguments():
    """SEED USERS DAYS CHURN_RATE OUT_DIR [extra…] from the command line."""
    a = sys.argv
    return int(a[1]), int(a[2]), int(a[3]), float(a[4]), a[5], a[6:]


def write_population(out, events, labels):
    """OUT_DIR/events.jsonl in time order (the JSON event contract) and OUT_DIR/labels.jsonl."""
    events.sort(key=lambda e: e['ts'])
    os.makedirs(out, exist_ok=True)
    with open(out + '/events.jsonl', 'w') as f:
        for e in events:
            f.write(json.dumps(e, separators=(',', ':')) + '\n')
    with open(out + '/labels.jsonl', 'w') as f:
        for l in labels:
            f.write(json.dumps(l) + '\n')
    print(len(events), 'events', sum(l['churned'] for l in labels), 'churned')
