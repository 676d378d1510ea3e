/*
 * The AF_UNIX floor for `vaccel-bench rpc`: what two processes written in C reach over a unix
 * stream socket on this machine, with no RPC layer at all. Compiled at bench time with `cc`.
 *
 *   unix-floor rtt  COUNT BYTES   one BYTES message each way, COUNT times: µs per round trip
 *   unix-floor bulk COUNT BYTES   BYTES one way then a 1-byte ack, COUNT times: µs per message
 *
 * Prints one JSON line: {"mode":…,"bytes":…,"samples":[µs,…]}.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void full_write(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w <= 0) _exit(3);
    buf += w;
    n -= (size_t)w;
  }
}

static int full_read(int fd, char *buf, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, buf, n);
    if (r <= 0) return -1;
    buf += r;
    n -= (size_t)r;
  }
  return 0;
}

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: unix-floor rtt|bulk COUNT BYTES\n");
    return 2;
  }
  int bulk = strcmp(argv[1], "bulk") == 0;
  long count = atol(argv[2]);
  size_t bytes = (size_t)atol(argv[3]);
  if ((!bulk && strcmp(argv[1], "rtt") != 0) || count <= 0 || bytes == 0) {
    fprintf(stderr, "usage: unix-floor rtt|bulk COUNT BYTES\n");
    return 2;
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
  char *buf = calloc(1, bytes);
  if (!buf) return 1;
  pid_t child = fork();
  if (child == 0) {
    close(sv[0]);
    char ack = 1;
    for (;;) {
      if (full_read(sv[1], buf, bytes) != 0) _exit(0);
      if (bulk) full_write(sv[1], &ack, 1);
      else full_write(sv[1], buf, bytes);
    }
  }
  close(sv[1]);
  double *samples = malloc(sizeof(double) * (size_t)count);
  char ack;
  for (long i = -count; i < count; i++) { /* as many warm-up rounds as measured ones */
    double start = now_us();
    full_write(sv[0], buf, bytes);
    if (bulk ? full_read(sv[0], &ack, 1) : full_read(sv[0], buf, bytes)) return 1;
    if (i >= 0) samples[i] = now_us() - start;
  }
  close(sv[0]);
  waitpid(child, NULL, 0);
  printf("{\"mode\":\"%s\",\"bytes\":%zu,\"samples\":[", argv[1], bytes);
  for (long i = 0; i < count; i++) printf("%s%.3f", i ? "," : "", samples[i]);
  printf("]}\n");
  return 0;
}
