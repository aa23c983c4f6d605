#!/usr/bin/env python3
"""Time to first streamed content of `smtrain serve` (stdlib only).

Usage: ttft.py URL N MAX_TOKENS OUT.json
Sends N streamed chat completions one after another and records, per
request, the seconds until the first chunk with non-empty delta content
and until [DONE]. Writes the samples and their medians to OUT.json.
"""
import http.client, json, statistics, sys, time, urllib.parse

url, n, max_tokens, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
u = urllib.parse.urlparse(url)
first, total = [], []
for i in range(n):
    body = json.dumps({"model": sys.argv[5] if len(sys.argv) > 5 else "smtrain",
                       "messages": [{"role": "user", "content": "Describe the data."}],
                       "max_tokens": max_tokens, "stream": True, "seed": i + 1})
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    t0 = time.perf_counter()
    c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        sys.exit(f"ttft: HTTP {r.status}: {r.read()[:200]!r}")
    t_first = None
    for line in r:
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            break
        ch = json.loads(data).get("choices") or [{}]
        if t_first is None and ch[0].get("delta", {}).get("content"):
            t_first = time.perf_counter() - t0
    t_end = time.perf_counter() - t0
    c.close()
    first.append(t_first if t_first is not None else t_end)
    total.append(t_end)
res = {"url": url, "requests": n, "max_tokens": max_tokens,
       "first_content_s": first, "total_s": total,
       "first_content_median_s": statistics.median(first),
       "total_median_s": statistics.median(total)}
json.dump(res, open(out, "w"), indent=1)
print(f"first content median {res['first_content_median_s']*1e3:.1f} ms "
      f"(min {min(first)*1e3:.1f}, max {max(first)*1e3:.1f}); "
      f"reply median {res['total_median_s']*1e3:.1f} ms")
