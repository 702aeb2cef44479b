#!/usr/bin/env bash
# Installs what the tests need (Debian packages) if missing, starts RabbitMQ and VictoriaMetrics on loopback,
# builds, runs every test, and stops what it started. .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d /tmp/fleetwatch-test.XXXXXX)
started_rabbit=0
vm_pid=""

log() { printf '[test.sh %(%H:%M:%S)T] %s\n' -1 "$*"; }

cleanup() {
  set +e
  if [ -n "$vm_pid" ]; then kill "$vm_pid" 2>/dev/null; wait "$vm_pid" 2>/dev/null; log "stopped VictoriaMetrics"; fi
  if [ "$started_rabbit" = 1 ]; then rabbitmqctl -q stop >/dev/null 2>&1; log "stopped RabbitMQ"; fi
  rm -rf "$work"
}
trap cleanup EXIT

# 1. Packages (SERVICES.md recipes). apt-get only when something is missing.
need=()
command -v rabbitmq-server >/dev/null || need+=(rabbitmq-server)
command -v victoria-metrics >/dev/null || need+=(victoria-metrics)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
/usr/bin/python3 -c 'import numpy' 2>/dev/null || need+=(python3-numpy)
command -v gcc >/dev/null || need+=(gcc) # links the Native AOT agent and builds the fake libnvidia-ml.so.1
command -v promtool >/dev/null || need+=(prometheus)
# The Alertmanager integration test starts its own prometheus-alertmanager (free loopback port, temp dir).
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
# Slurm: the tests start their own munged, slurmctld and slurmd processes (tests/FleetWatch.Integration.Tests/Slurm/SlurmCluster.cs).
[ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] && [ -x /usr/bin/scontrol ] || need+=(slurm-wlm)
[ -x /usr/sbin/munged ] || need+=(munge)
if [ ${#need[@]} -gt 0 ]; then
  log "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}" >/dev/null
fi

# 2. RabbitMQ (reuse one that already answers; otherwise start and later stop ours).
if rabbitmqctl -q await_startup >/dev/null 2>&1; then
  log "RabbitMQ already running"
else
  log "starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  started_rabbit=1
  for i in $(seq 1 60); do
    # await_startup exits 69 when called too early: retry (deps-and-limits.md).
    if rabbitmqctl -q await_startup >/dev/null 2>&1; then break; fi
    sleep 1
    if [ "$i" = 60 ]; then log "RabbitMQ did not start"; exit 1; fi
  done
fi

# 3. VictoriaMetrics (InfluxDB v2 write API) on loopback, on a free port.
vm_port=18428
victoria-metrics -storageDataPath="$work/vm" -httpListenAddr=127.0.0.1:$vm_port -loggerLevel=ERROR >"$work/vm.log" 2>&1 &
vm_pid=$!
for i in $(seq 1 30); do
  if curl -sf "http://127.0.0.1:$vm_port/health" >/dev/null; then break; fi
  sleep 0.5
  if [ "$i" = 30 ]; then log "VictoriaMetrics did not start"; cat "$work/vm.log"; exit 1; fi
done
export FLEETWATCH_TEST_VM_URL="http://127.0.0.1:$vm_port"
export FLEETWATCH_TEST_RABBITMQ_HOST=127.0.0.1 FLEETWATCH_TEST_RABBITMQ_PORT=5672
log "services up: RabbitMQ 127.0.0.1:5672, VictoriaMetrics $FLEETWATCH_TEST_VM_URL"

# 4. Build once, then every test project.
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
log "building"
dotnet build FleetWatch.sln -c Release -nologo -v q
# The README's first command publishes the CLI (./fleetwatch): it must keep building, though no test runs the demo.
log "publishing the CLI as ./fleetwatch does"
./fleetwatch --help >/dev/null
# The node agent as shipped: Native AOT (gcc links it). Integration tests run this binary.
log "publishing the Native AOT agent"
dotnet publish agent/FleetWatch.Agent/FleetWatch.Agent.csproj -c Release -r linux-x64 -o artifacts/agent-aot -nologo -v q
export FLEETWATCH_TEST_AGENT_AOT="$PWD/artifacts/agent-aot/fleetwatch-agent"
passed=0; failed=0; status=0
for proj in tests/*/*.csproj; do
  name=$(basename "$proj" .csproj)
  log "testing $name"
  set +e
  dotnet test "$proj" -c Release --no-build -nologo --logger "console;verbosity=normal" >"$work/$name.log" 2>&1
  rc=$?
  set -e
  grep -E '^\s*Failed |^(Passed|Failed)!|aborted|crashed' "$work/$name.log" || true
  p=$( (grep -oE 'Passed: +[0-9]+' "$work/$name.log" || true) | awk '{s+=$2} END {print s+0}')
  f=$( (grep -oE 'Failed: +[0-9]+' "$work/$name.log" || true) | awk '{s+=$2} END {print s+0}')
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$rc" != 0 ]; then
    status=1
    log "$name failed (exit $rc); failing tests and the end of its log:"
    grep -E -A 25 '^\s*Failed ' "$work/$name.log" | head -150 || true
    tail -15 "$work/$name.log"
  fi
done
echo "tests: $passed passed, $failed failed"
exit $status
