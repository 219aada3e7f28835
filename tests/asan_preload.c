/*
 * asan_preload.c -- preloaded after the ASan runtime into a broker that
 * is not built with ASan (Debian's mosquitto running an ASan build of the
 * plugin), so that the runtime's start-up leaves glibc's locale lock as it
 * found it.
 *
 * Preloaded, the ASan runtime starts on the first malloc of the process,
 * not from its own constructor, which runs after those of the broker's
 * libraries.  That first malloc comes from libgpg-error's constructor
 * inside bindtextdomain(), which holds glibc's _nl_state_lock for
 * writing.  At the end of its start-up the runtime (GCC 12) looks up the
 * optional symbol swift_demangle and clears the failed lookup's message
 * with dlerror(), which translates it with dcgettext(): the same thread
 * asks for the read side of the lock it holds, glibc refuses (EDEADLK,
 * ignored), and dcgettext's unlock releases bindtextdomain's write lock
 * instead.  bindtextdomain's own unlock then takes a reader away from an
 * unlocked lock, whose count wraps, and from then on every gettext user
 * in the broker (libpq's first bindtextdomain, strerror in a destructor at
 * exit) waits on it forever.
 *
 * Found here, the lookup succeeds: dlerror() has no message to translate
 * and the lock stays balanced.  The runtime asks swift_demangle only for
 * names that look like Swift's; NULL means "not one", as when it is
 * absent.  A process that does not preload the ASan runtime (every real
 * broker, and the normal build) never takes this path.
 */
#include <stddef.h>
#include <stdint.h>

char *swift_demangle(const char *mangled, size_t length, char *buffer, size_t *buffer_size,
                     uint32_t flags);

char *swift_demangle(const char *mangled, size_t length, char *buffer, size_t *buffer_size,
                     uint32_t flags) {
    (void)mangled;
    (void)length;
    (void)buffer;
    (void)buffer_size;
    (void)flags;
    return NULL;
}
