#!/usr/bin/env bash
# Compiles the Android demo's pure-Java core (android_demo/core) with the JDK and runs its JUnit 4
# tests with Debian's junit4 -- the part of the app that builds without the Android SDK.
#
#   bash tools/android_check.sh            # compile + run every *Test class
#   OUT=/tmp/core bash tools/android_check.sh
#
# Needs: javac/java 17 and `apt-get install -y junit4` (/usr/share/java/junit4.jar,
# hamcrest-core.jar). Prints JUnit's summary ("OK (N tests)") and exits non-zero on a failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CORE="$ROOT/android_demo/core"
OUT="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/pocketnet-core.XXXXXX")}"
JUNIT_JAR="${JUNIT_JAR:-/usr/share/java/junit4.jar}"
HAMCREST_JAR="${HAMCREST_JAR:-/usr/share/java/hamcrest-core.jar}"

for jar in "$JUNIT_JAR" "$HAMCREST_JAR"; do
    [ -f "$jar" ] || { echo "missing $jar: apt-get install -y junit4" >&2; exit 2; }
done
command -v javac >/dev/null || { echo "javac not found: install a JDK 17" >&2; exit 2; }

mkdir -p "$OUT/main" "$OUT/test"
# --release 11: the core must stay within what Android's desugared Java supports.
javac --release 11 -Xlint:all -Werror -encoding UTF-8 -d "$OUT/main" \
    $(find "$CORE/src/main/java" -name '*.java' | sort)
javac --release 11 -encoding UTF-8 -cp "$OUT/main:$JUNIT_JAR" -d "$OUT/test" \
    $(find "$CORE/src/test/java" -name '*.java' | sort)

classes=$(cd "$CORE/src/test/java" && find . -name '*Test.java' | sed 's|^\./||; s|\.java$||; s|/|.|g' | sort)
java -cp "$OUT/main:$OUT/test:$JUNIT_JAR:$HAMCREST_JAR" org.junit.runner.JUnitCore $classes
