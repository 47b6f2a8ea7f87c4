/*
 * inbox: a mutex-guarded FIFO of intrusive messages that wakes a libuv loop.
 *
 * DESIGN. Producers on any thread push a message (the node is embedded in the sender's
 * own struct, so pushing never allocates) and the loop is woken with uv_async_send; the
 * loop thread takes the whole list in one lock and handles it outside the lock. libuv
 * coalesces wake-ups, so the loop always drains everything queued, never one message
 * per wake. Closing is part of the contract: uv_async_send on a closed handle is
 * undefined, so pushes happen under the lock and a closed inbox refuses them.
 *
 * Threads: inbox_push and inbox_remove_if from any thread; inbox_init, inbox_take,
 * inbox_close from the loop thread (inbox_init also before the loop runs).
 */
#ifndef CS_SERVER_INBOX_H
#define CS_SERVER_INBOX_H

#include <pthread.h>
#include <stdbool.h>
#include <uv.h>

typedef struct inbox_msg {
    struct inbox_msg *next;
    int kind; /* the owner's message type */
} inbox_msg;

typedef struct inbox {
    uv_async_t async;     /* loop-owned handle; async.data is the owner's pointer */
    pthread_mutex_t lock; /* guards head, tail, closed */
    inbox_msg *head, *tail;
    bool closed;
} inbox;

/* Initialises the handle on loop; cb runs on the loop thread after pushes. */
int inbox_init(inbox *ib, uv_loop_t *loop, uv_async_cb cb, void *data);
/* Appends msg and wakes the loop; false (msg untouched, not queued) once closed. */
bool inbox_push(inbox *ib, inbox_msg *msg);
/* Every queued message, oldest first, as a NULL-terminated list; the inbox is empty. */
inbox_msg *inbox_take(inbox *ib);
/* Unlinks every queued message for which pred is true and returns them as a list. */
inbox_msg *inbox_remove_if(inbox *ib, bool (*pred)(const inbox_msg *m, const void *ctx),
                           const void *ctx);
/* Refuses further pushes and returns what is still queued; then starts closing the
 * handle (close_cb may be NULL). Loop thread only. */
inbox_msg *inbox_close(inbox *ib, uv_close_cb close_cb);
/* Destroys the lock; after the handle is closed. */
void inbox_deinit(inbox *ib);

#endif
