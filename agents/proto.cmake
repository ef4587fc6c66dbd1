# The wire codec (proto.{h,c}, library bursar_proto) and CURVE key
# files (keys.{h,c}): cJSON, ZeroMQ and bursar_base only. Every side of
# the protocol links it: the client library bursar, the controller (which includes this file itself, so
# that it builds with agents/ skipped), the test stand-ins, the benchmarks.
if(NOT TARGET bursar_proto)
  add_library(bursar_proto STATIC ${CMAKE_CURRENT_LIST_DIR}/proto.c
    ${CMAKE_CURRENT_LIST_DIR}/keys.c)
  target_include_directories(bursar_proto PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(bursar_proto
    PUBLIC bursar_base PkgConfig::CJSON PkgConfig::ZMQ ${MATH_LIB})
endif()
