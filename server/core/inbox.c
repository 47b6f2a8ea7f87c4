/*
 * inbox: mutex-guarded message FIFO plus uv_async wake-up (see inbox.h). Producers on
 * any thread, one consumer: the loop thread.
 */
#include "inbox.h"

#include <stddef.h>

int inbox_init(inbox *ib, uv_loop_t *loop, uv_async_cb cb, void *data) {
    ib->head = ib->tail = NULL;
    ib->closed = false;
    if (pthread_mutex_init(&ib->lock, NULL) != 0) return UV_ENOMEM;
    int rc = uv_async_init(loop, &ib->async, cb);
    if (rc != 0) {
        pthread_mutex_destroy(&ib->lock);
        return rc;
    }
    ib->async.data = data;
    return 0;
}

bool inbox_push(inbox *ib, inbox_msg *msg) {
    msg->next = NULL;
    pthread_mutex_lock(&ib->lock);
    if (ib->closed) {
        pthread_mutex_unlock(&ib->lock);
        return false;
    }
    if (ib->tail)
        ib->tail->next = msg;
    else
        ib->head = msg;
    ib->tail = msg;
    /* Sent under the lock so that it always happens before inbox_close's uv_close. */
    uv_async_send(&ib->async);
    pthread_mutex_unlock(&ib->lock);
    return true;
}

inbox_msg *inbox_take(inbox *ib) {
    pthread_mutex_lock(&ib->lock);
    inbox_msg *list = ib->head;
    ib->head = ib->tail = NULL;
    pthread_mutex_unlock(&ib->lock);
    return list;
}

inbox_msg *inbox_remove_if(inbox *ib, bool (*pred)(const inbox_msg *m, const void *ctx),
                           const void *ctx) {
    inbox_msg *out = NULL, **out_tail = &out;
    pthread_mutex_lock(&ib->lock);
    inbox_msg **at = &ib->head, *prev = NULL;
    while (*at) {
        inbox_msg *m = *at;
        if (pred(m, ctx)) {
            *at = m->next;
            m->next = NULL;
            *out_tail = m;
            out_tail = &m->next;
        } else {
            prev = m;
            at = &m->next;
        }
    }
    ib->tail = prev;
    pthread_mutex_unlock(&ib->lock);
    return out;
}

inbox_msg *inbox_close(inbox *ib, uv_close_cb close_cb) {
    pthread_mutex_lock(&ib->lock);
    ib->closed = true;
    inbox_msg *list = ib->head;
    ib->head = ib->tail = NULL;
    pthread_mutex_unlock(&ib->lock);
    uv_close((uv_handle_t *)&ib->async, close_cb);
    return list;
}

void inbox_deinit(inbox *ib) {
    pthread_mutex_destroy(&ib->lock);
}
