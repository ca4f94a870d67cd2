# Writes corral's source commit into a header at every build (cmake -P, from
# cache-server/CMakeLists.txt): `git rev-parse --short=12 HEAD` plus "-dirty" when tracked files
# differ from it; without a git checkout (a container build of a copied tree) CORRAL_COMMIT, from
# the -D option or the environment; else "unknown". The header is rewritten only when the commit
# changes, so an unchanged tree recompiles nothing.
# Inputs: -DSOURCE_DIR=... -DOUTPUT=... [-DCORRAL_COMMIT=...]
set(commit "")
if(NOT CORRAL_COMMIT AND DEFINED ENV{CORRAL_COMMIT})
  set(CORRAL_COMMIT "$ENV{CORRAL_COMMIT}")
endif()
if(CORRAL_COMMIT)
  set(commit "${CORRAL_COMMIT}")
else()
  find_program(GIT git)
  if(GIT AND EXISTS "${SOURCE_DIR}/.git")
    execute_process(COMMAND "${GIT}" -C "${SOURCE_DIR}" rev-parse --short=12 HEAD
                    OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE
                    RESULT_VARIABLE status ERROR_QUIET)
    if(NOT status EQUAL 0)
      set(commit "")
    else()
      execute_process(COMMAND "${GIT}" -C "${SOURCE_DIR}" diff --quiet HEAD --
                      RESULT_VARIABLE dirty ERROR_QUIET)
      if(NOT dirty EQUAL 0)
        string(APPEND commit "-dirty")
      endif()
    endif()
  endif()
endif()
if(NOT commit MATCHES "^[0-9A-Za-z._-]+$")
  set(commit "unknown")
endif()
set(text "// Written by cache-server/commit.cmake at build time: the commit corral was built from.\n")
string(APPEND text "#define CORRAL_COMMIT \"${commit}\"\n")
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
else()
  set(old "")
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUTPUT}" "${text}")
endif()
