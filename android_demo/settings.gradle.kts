// PocketNet Android demo: face verification with a bundle exported by pocketnet_tf.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google() // com.google.ai.edge.litert, androidx.*
        mavenCentral() // junit
    }
}

rootProject.name = "PocketNetDemo"
include(":core") // pure Java: bundle, preprocessing, alignment, BlazeFace decoding, gallery
include(":app") // Android UI, CameraX, LiteRT
