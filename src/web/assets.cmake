# assets.cmake - compiles src/web/static/* into sb_web: a generated C file holds each file's
# bytes and the table web_assets[] (declared in src/web/internal.h). Included from the top
# CMakeLists.txt after sb_module(web ...). No xxd or od needed: embed_assets.cmake reads the
# files with file(READ ... HEX) in CMake's script mode.
file(GLOB web_static_files CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/web/static/*)
set(web_assets_c ${CMAKE_BINARY_DIR}/generated/web_assets.c)
add_custom_command(OUTPUT ${web_assets_c}
  COMMAND ${CMAKE_COMMAND} -DSRC_DIR=${PROJECT_SOURCE_DIR}/src/web/static -DOUT=${web_assets_c}
          -P ${PROJECT_SOURCE_DIR}/src/web/embed_assets.cmake
  DEPENDS ${web_static_files} ${PROJECT_SOURCE_DIR}/src/web/embed_assets.cmake
  COMMENT "Embedding web assets")
target_sources(sb_web PRIVATE ${web_assets_c})
