"""nodeutil: the Node.js peers of the integration tests (tests/integration/node).

ensure() installs the packages of node/package.json with npm when
node_modules is missing and returns the environment to run node with, or
None (with the reason printed as a TAP skip) when node or npm is absent or
the install fails."""

import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "node")


def script(name):
    return os.path.join(NODE_DIR, name)


def ensure(need=("ws",), where=NODE_DIR):
    if not shutil.which("node") or not shutil.which("npm"):
        print("1..0 # SKIP node or npm is not installed (scripts/deps.sh test)")
        return None
    mods = os.path.join(where, "node_modules")
    if not all(os.path.isdir(os.path.join(mods, n)) for n in need):
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"],
                           cwd=where, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=600)
        if r.returncode != 0:
            print("1..0 # SKIP npm install failed: %s" % r.stderr.decode(errors="replace")[-300:])
            return None
    env = dict(os.environ)
    env["NODE_PATH"] = mods
    return env
