// Pure-Java core: no android.* imports, no third-party runtime dependencies. It also builds and
// tests without Gradle: `bash tools/android_check.sh` (JDK + Debian junit4), which CI runs.
plugins {
    `java-library`
}

tasks.withType<JavaCompile>().configureEach {
    // Java 11 APIs only, so that the same bytecode runs on Android (minSdk 26) through D8.
    options.release.set(11)
    options.encoding = "UTF-8"
}

tasks.named<JavaCompile>("compileJava") {
    options.compilerArgs.addAll(listOf("-Xlint:all", "-Werror"))
}

dependencies {
    testImplementation(libs.junit)
}
