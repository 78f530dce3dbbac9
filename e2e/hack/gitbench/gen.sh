#!/bin/bash
# Generates a release-like bare repo: 5000 job files under ci-operator/jobs,
# 20000 unrelated files, 10 further commits of history.
set -euo pipefail
root=${1:-/tmp/gitbench/repo}
rm -rf "$root"; mkdir -p "$root/seed"
cd "$root/seed"
git init -q --initial-branch master .
python3 - <<'PY'
import os, random
random.seed(1)
def w(p, n):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write("".join(random.choice("abcdefghij klmnop\n") for _ in range(n)))
for i in range(5000):
    w(f"ci-operator/jobs/org{i%100}/repo{i%500}/job-{i}-presubmits.yaml", 1500)
for i in range(20000):
    w(f"ci-operator/config/other{i%200}/sub{i%1000}/file-{i}.yaml", 3000)
os.makedirs("core-services/sanitize-prow-jobs", exist_ok=True)
open("core-services/sanitize-prow-jobs/_config.yaml","w").write("default: build01\n")
open("core-services/sanitize-prow-jobs/_clusters.yaml","w").write("build01: {}\n")
PY
git add -A >/dev/null; git -c user.name=s -c user.email=s@x commit -qm seed
for c in $(seq 1 10); do
  python3 - "$c" <<'PY'
import random, sys
c=int(sys.argv[1]); random.seed(100+c)
for i in random.sample(range(20000), 500):
    with open(f"ci-operator/config/other{i%200}/sub{i%1000}/file-{i}.yaml","a") as f: f.write("x"*random.randint(10,500)+"\n")
for i in random.sample(range(5000), 50):
    with open(f"ci-operator/jobs/org{i%100}/repo{i%500}/job-{i}-presubmits.yaml","a") as f: f.write("y"*100+"\n")
PY
  git -c user.name=s -c user.email=s@x commit -qam "change $c"
done
mkdir -p "$root/git/openshift"
git clone -q --bare . "$root/git/openshift/release"
git -C "$root/git/openshift/release" config http.receivepack true
git -C "$root/git/openshift/release" config uploadpack.allowFilter true
du -sb "$root/git/openshift/release"
