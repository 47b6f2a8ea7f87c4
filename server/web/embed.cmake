# Turns a file into a C array (cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed.cmake):
# the web page is compiled into the server, with no tool besides CMake.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR bytes "${digits} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x..,){24})" "\\1\n" body "${body}")
file(WRITE "${OUT}" "/* Generated from ${IN} by embed.cmake: do not edit. */\n#include <stddef.h>\nconst unsigned char ${NAME}[] = {\n${body}0};\nconst size_t ${NAME}_len = ${bytes};\n")
