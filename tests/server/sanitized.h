/* CS_SANITIZED is defined in AddressSanitizer and ThreadSanitizer builds (gcc and clang):
 * their allocator replaces glibc's, so tests of glibc malloc's behaviour skip there. */
#ifndef CS_TEST_SANITIZED_H
#define CS_TEST_SANITIZED_H

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CS_SANITIZED 1
#endif
#endif

#endif
