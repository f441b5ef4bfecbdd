#!/usr/bin/env bash
# Runs every namespace test script and prints one closing tally for all of them.
cd "$(dirname "$0")/.."
total_passed=0
total_failed=0
# One suite per line, so that adding a suite never conflicts with another.
SUITES=(
    scripts/test-manifest.sh
    scripts/test-cli.sh
    scripts/test-readme.sh
    scripts/test-plugin.sh
    scripts/test-portable.sh
    scripts/test-log.sh
    scripts/test-netlink-limits.sh
    scripts/test-cluster.sh
    scripts/test-masq.sh
    scripts/test-runtimes.sh
    scripts/test-cri.sh
    scripts/test-daemonset.sh
    scripts/test-options.sh
    scripts/test-dualstack.sh
    scripts/test-agent.sh
    scripts/test-netpol.sh
    scripts/test-vxlan.sh
    scripts/test-agent-production.sh
    scripts/test-agent-masquerade-scale.sh
    scripts/test-services.sh
    scripts/test-podcidr-change.sh
    scripts/test-lease-index.sh
    scripts/test-reliability.sh
)
for script in "${SUITES[@]}"; do
    echo "=== $script"
    log=$(mktemp)
    bash "$script" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    tally=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
    rm -f "$log"
    if [ -z "$tally" ]; then
        echo "$script ended (exit $status) without a tally"
        total_failed=$((total_failed + 1))
        continue
    fi
    total_passed=$((total_passed + ${tally%% passed*}))
    failed=${tally#*, }
    total_failed=$((total_failed + ${failed%% failed}))
    [ "$status" -ne 0 ] && [ "${failed%% failed}" = 0 ] && total_failed=$((total_failed + 1))
done
echo
echo "integration: $total_passed passed, $total_failed failed"
[ $total_failed -eq 0 ]
