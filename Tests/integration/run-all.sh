#!/usr/bin/env bash
# Runs every namespace test script and prints one closing tally for all of them.
cd "$(dirname "$0")/../.."
total_passed=0
total_failed=0
# One suite per line, so that adding a suite never conflicts with another.
SUITES=(
    Tests/integration/test-layout.sh
    Tests/integration/test-manifest.sh
    Tests/integration/test-cli.sh
    Tests/integration/test-readme.sh
    Tests/integration/test-plugin.sh
    Tests/integration/test-portable.sh
    Tests/integration/test-log.sh
    Tests/integration/test-netlink-limits.sh
    Tests/integration/test-cluster.sh
    Tests/integration/test-masq.sh
    Tests/integration/test-runtimes.sh
    Tests/integration/test-cri.sh
    Tests/integration/test-daemonset.sh
    Tests/integration/test-options.sh
    Tests/integration/test-dualstack.sh
    Tests/integration/test-agent.sh
    Tests/integration/test-netpol.sh
    Tests/integration/test-vxlan.sh
    Tests/integration/test-agent-production.sh
    Tests/integration/test-agent-masquerade-scale.sh
    Tests/integration/test-services.sh
    Tests/integration/test-podcidr-change.sh
    Tests/integration/test-lease-index.sh
    Tests/integration/test-reliability.sh
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
