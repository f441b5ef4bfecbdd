#!/usr/bin/env bash
# The tree has the shape the README's folder table (## Layout) says: every folder the table names
# exists, every top-level folder and every folder of Tests/ and Tests/integration/ is named there,
# and run-all.sh runs exactly the suites in Tests/integration/. Needs no root and no namespace.
source "$(dirname "$0")/lib/lib.sh"

# Folders that hold tracked files (a build's .build/ or a stray __pycache__/ are not the tree's).
tracked_dirs() {
    if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
        git -C "$REPO" ls-files | grep / | sed 's#/[^/]*$##' | awk -F/ '{p=$1; print p; for (i = 2; i <= NF; i++) { p = p "/" $i; print p } }'
    else
        (cd "$REPO" && find . -type d -not -path './.build*' -not -path './.git*' -not -name __pycache__ | sed -e 's#^\./##' -e '/^\.$/d')
    fi | sort -u
}
DIRS=$(tracked_dirs)
# The first cell of each row of the table under "| folder | holds |", without backticks and the
# trailing slash.
TABLE=$(awk '/^\| folder \| holds \|$/ { on = 1; next } on && !/^\|/ { exit } on && /^\| `/ { print }' "$REPO/README.md" |
    sed -E 's/^\| `([^`]*)` \|.*/\1/; s#/$##')
# listed TABLE DIR: the table names DIR or a folder inside it (Tests/ has rows of its folders). A
# row Tests/<Target>Tests stands for Tests/XTests of every Swift target X in Sources/.
listed() {
    grep -qxF -- "$2" <<<"$1" && return 0
    grep -q "^$2/" <<<"$1" && return 0
    [[ $2 =~ ^Tests/([A-Za-z0-9_-]+)Tests$ ]] && grep -qxF 'Tests/<Target>Tests' <<<"$1" &&
        [ -d "$REPO/Sources/${BASH_REMATCH[1]}" ]
}
# missing TABLE: the folders the table names that the tree lacks.
missing() {
    local d
    for d in $1; do
        if [ "$d" = 'Tests/<Target>Tests' ]; then
            grep -qE '^Tests/[A-Za-z0-9_-]+Tests$' <<<"$DIRS" || echo "$d"
        else
            grep -qxF -- "$d" <<<"$DIRS" || echo "$d"
        fi
    done
}
# unlisted TABLE: top-level folders, and folders of Tests/ and Tests/integration/, not in the table.
unlisted() {
    local d
    for d in $(grep -E '^[^/]+$|^Tests/[^/]+$|^Tests/integration/[^/]+$' <<<"$DIRS"); do
        listed "$1" "$d" || echo "$d"
    done
}

check "the README has a folder table ($(wc -l <<<"$TABLE") rows)" test "$(wc -l <<<"$TABLE")" -ge 5
out=$(missing "$TABLE")
check "every folder the table names exists${out:+ (missing: $(echo $out))}" test -z "$out"
out=$(unlisted "$TABLE")
check "every top-level folder, and every folder of Tests/ and Tests/integration/, is in the table${out:+ (not: $(echo $out))}" \
    test -z "$out"
# The checks can fail: a table without bench/, or with a folder the tree lacks, is caught.
check "...a table without bench/ is caught" test "$(unlisted "$(grep -vxF bench <<<"$TABLE")")" = bench
check "...and a table naming tools/ (bench/tools/ is not top-level) is caught" \
    test "$(missing "$TABLE"$'\n'tools)" = tools
same_case=$(grep -E '^[^/]+$' <<<"$DIRS" | tr 'A-Z' 'a-z' | sort | uniq -d)
check "no two top-level folders differ only by case${same_case:+ ($same_case)}" test -z "$same_case"

# run-all.sh's list against the suites on disk, both ways.
on_disk=$(cd "$REPO" && ls Tests/integration/test-*.sh | sort)
in_list=$(awk '/^SUITES=\($/ { on = 1; next } on && /^\)$/ { exit } on { print $1 }' "$REPO/Tests/integration/run-all.sh" | sort)
check "run-all.sh runs every suite in Tests/integration/ and no other ($(wc -l <<<"$on_disk") suites)" \
    test "$on_disk" = "$in_list"
strays=$(cd "$REPO" && ls scripts/test-*.sh demo/test-*.sh bench/test-*.sh 2>/dev/null)
check "no suite lies outside Tests/integration/${strays:+ ($strays)}" test -z "$strays"

echo
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
