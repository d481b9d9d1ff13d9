// Platforms with no native engine built yet: the addon still loads (probe,
// version), and the loader reports the native engines as unavailable because
// NativeEngine is missing.
#include <napi.h>

namespace fastport {
void InitEngine(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}
}  // namespace fastport
