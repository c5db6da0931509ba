#include "loadgen/workload.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>

namespace segd {

// ---- Rng -------------------------------------------------------------------------

namespace {

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Rng::Rng(uint64_t seed) {
  for (uint64_t& s : s_) s = SplitMix64(&seed);
}

uint64_t Rng::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

// ---- ZipfSampler -------------------------------------------------------------------
//
// H(x) = x^-e is the (unnormalised) probability of rank x, HIntegral its antiderivative
// (log x at e = 1, handled by the series helpers). A sample inverts HIntegral at a
// uniform point of [HIntegral(n + 1/2), HIntegral(3/2) - 1] and rounds to the nearest
// rank k, accepted when the point lies under the step of width 1 around k; s_ lets
// most samples be accepted without evaluating HIntegral again.

namespace {

// log1p(x) / x, continuous at 0.
double Helper1(double x) {
  return std::abs(x) > 1e-8 ? std::log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3 - 0.25 * x));
}

// expm1(x) / x, continuous at 0.
double Helper2(double x) {
  return std::abs(x) > 1e-8 ? std::expm1(x) / x
                            : 1 + x * 0.5 * (1 + x * (1.0 / 3) * (1 + 0.25 * x));
}

}  // namespace

ZipfSampler::ZipfSampler(uint64_t n, double exponent) : n_(n), exponent_(exponent) {
  h_integral_x1_ = HIntegral(1.5) - 1;
  h_integral_n_ = HIntegral(static_cast<double>(n_) + 0.5);
  s_ = 2 - HIntegralInverse(HIntegral(2.5) - H(2));
}

double ZipfSampler::H(double x) const { return std::exp(-exponent_ * std::log(x)); }

double ZipfSampler::HIntegral(double x) const {
  const double log_x = std::log(x);
  return Helper2((1 - exponent_) * log_x) * log_x;
}

double ZipfSampler::HIntegralInverse(double x) const {
  double t = x * (1 - exponent_);
  if (t < -1) t = -1;  // rounding near the boundary
  return std::exp(Helper1(t) * x);
}

uint64_t ZipfSampler::Sample(Rng& rng) const {
  while (true) {
    const double u = h_integral_n_ + rng.Uniform() * (h_integral_x1_ - h_integral_n_);
    const double x = HIntegralInverse(u);
    double k = std::floor(x + 0.5);
    if (k < 1) k = 1;
    if (k > static_cast<double>(n_)) k = static_cast<double>(n_);
    if (k - x <= s_ || u >= HIntegral(k + 0.5) - H(k)) return static_cast<uint64_t>(k);
  }
}

// ---- Value tables ------------------------------------------------------------------
//
// Shares in percent are drawn with Below(100) against cumulative bounds; the country
// Zipf (exponent 1 over 30 ranks) against a cumulative table of doubles.

namespace {

constexpr std::array<std::string_view, 30> kCountries = {
    "DK", "SE", "NO", "DE", "US", "GB", "FR", "NL", "FI", "ES", "IT", "PL", "BE", "AT", "CH",
    "IE", "PT", "CZ", "CA", "AU", "JP", "BR", "MX", "IN", "SG", "NZ", "IS", "EE", "LT", "LV"};

struct CountryTable {
  std::array<double, kCountries.size()> cumulative;
  CountryTable() {
    double sum = 0;
    for (size_t i = 0; i < kCountries.size(); ++i) sum += 1.0 / static_cast<double>(i + 1);
    double acc = 0;
    for (size_t i = 0; i < kCountries.size(); ++i) {
      acc += 1.0 / static_cast<double>(i + 1) / sum;
      cumulative[i] = acc;
    }
    cumulative.back() = 1.0;
  }
};

const CountryTable& Countries() {
  static const CountryTable table;
  return table;
}

// ios 40 %, android 40 %, web 20 %.
constexpr std::array<std::string_view, 3> kDevices = {"ios", "android", "web"};
constexpr std::array<uint32_t, 3> kDeviceBounds = {40, 80, 100};

constexpr std::array<std::string_view, 4> kPlans = {"free", "basic", "pro", "enterprise"};
constexpr std::array<uint32_t, 4> kPlanBounds = {60, 85, 97, 100};

constexpr std::array<std::string_view, 8> kEmailDomains = {
    "gmail.com",  "yahoo.com", "outlook.com", "hotmail.com",
    "icloud.com", "proton.me", "gmx.de",      "web.de"};
constexpr std::array<uint32_t, 8> kEmailDomainBounds = {40, 54, 66, 76, 86, 92, 96, 100};

// kTags[0] is "vip", drawn on its own (2 %); the others fill the rest of 0–3 tags.
constexpr std::array<std::string_view, 10> kTags = {
    "vip",     "early_adopter", "beta", "churn_risk", "student",
    "partner", "referral",      "gift", "loyal",      "promo"};
constexpr uint32_t kVipPerMille = 20;

// Event types in the order of Workload's constants; page_view 70, add_to_cart 15,
// purchase 5, login 7, email_click 3.
enum EventType { kPageViewType, kAddToCartType, kPurchaseType, kLoginType, kEmailClickType };
constexpr std::array<std::string_view, 5> kEventTypes = {Workload::kPageView, Workload::kAddToCart,
                                                         Workload::kPurchase, Workload::kLogin,
                                                         Workload::kEmailClick};
constexpr std::array<uint32_t, 5> kEventBounds = {70, 85, 90, 97, 100};

// Sections are short enough that every url ("/watches/999") fits a short string.
constexpr std::array<std::string_view, 12> kSections = {"shoes",   "bags",   "shirts",  "dresses",
                                                        "jackets", "hats",   "watches", "jewelry",
                                                        "sports",  "beauty", "home",    "kids"};
constexpr std::array<std::string_view, 12> kCategories = {
    "new",     "sale",   "men",    "women", "kids", "sport",
    "outdoor", "luxury", "basics", "gifts", "eco",  "clearance"};
constexpr std::array<std::string_view, 5> kLoginMethods = {"password", "google", "apple",
                                                           "magic_link", "sso"};
constexpr std::array<std::string_view, 8> kCampaigns = {
    "welcome", "spring_sale", "summer_sale", "black_friday",
    "xmas",    "winback",     "newsletter",  "new_arrivals"};

template <size_t N>
size_t PickPercent(Rng& rng, const std::array<uint32_t, N>& bounds) {
  const uint64_t r = rng.Below(100);
  size_t i = 0;
  while (r >= bounds[i]) ++i;
  return i;
}

size_t PickCountry(Rng& rng) {
  const auto& cumulative = Countries().cumulative;
  const double u = rng.Uniform();
  size_t i = 0;
  while (i + 1 < cumulative.size() && u >= cumulative[i]) ++i;
  return i;
}

double Cents(double x) { return std::round(x * 100) / 100; }

// Log-uniform in [lo, hi]: most amounts small, a long tail of large ones.
double LogUniform(Rng& rng, double lo, double hi) {
  return Cents(lo * std::exp(rng.Uniform() * std::log(hi / lo)));
}

// Exponential with mean 200, truncated to [0, 2000] by inversion.
double LongTailedLtv(Rng& rng) {
  static const double kMass = -std::expm1(-10.0);  // P(X <= 2000) untruncated
  return Cents(std::min(2000.0, -200.0 * std::log1p(-rng.Uniform() * kMass)));
}

void AppendUint(uint64_t v, std::string* out) {
  char buf[24];
  const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  out->append(buf, end);
}

void SetString(std::pair<std::string, Value>* p, std::string_view name, std::string_view v) {
  p->first.assign(name);
  p->second = Value::String(std::string(v));
}

// Overwrites `*e` with an event of `type` at `time`, reusing its storage. `order_id`
// is used by purchases only. Returns the purchase amount (0 for other types).
double FillEvent(Rng& rng, EventType type, int64_t time, std::string_view order_id, Event* e) {
  e->type.assign(kEventTypes[type]);
  e->time = time;
  e->id.clear();
  NamedValues& props = e->properties;
  double amount = 0;
  switch (type) {
    case kPageViewType: {
      props.resize(2);
      char url[24] = "/";
      const std::string_view section = kSections[rng.Below(kSections.size())];
      char* p = std::copy(section.begin(), section.end(), url + 1);
      *p++ = '/';
      p = std::to_chars(p, url + sizeof url, rng.Below(1000)).ptr;
      SetString(&props[0], "url", std::string_view(url, p - url));
      SetString(&props[1], "category", kCategories[rng.Below(kCategories.size())]);
      break;
    }
    case kAddToCartType: {
      props.resize(2);
      char sku[16] = "SKU-";
      char* p = std::to_chars(sku + 4, sku + sizeof sku, 100000 + rng.Below(900000)).ptr;
      SetString(&props[0], "sku", std::string_view(sku, p - sku));
      props[1].first.assign("price");
      props[1].second = Value::Float(LogUniform(rng, 5, 500));
      break;
    }
    case kPurchaseType:
      props.resize(2);
      SetString(&props[0], "order_id", order_id);
      amount = LogUniform(rng, 5, 500);
      props[1].first.assign("amount");
      props[1].second = Value::Float(amount);
      break;
    case kLoginType:
      props.resize(1);
      SetString(&props[0], "method", kLoginMethods[rng.Below(kLoginMethods.size())]);
      break;
    case kEmailClickType:
      props.resize(1);
      SetString(&props[0], "campaign", kCampaigns[rng.Below(kCampaigns.size())]);
      break;
  }
  return amount;
}

// Tags: 0–3 distinct non-vip tags, and vip in 2 % of profiles (replacing the third
// tag when there are already three).
std::vector<std::string> MakeTags(Rng& rng) {
  std::array<uint8_t, kTags.size() - 1> pool;
  for (size_t i = 0; i < pool.size(); ++i) pool[i] = static_cast<uint8_t>(i + 1);
  const size_t count = rng.Below(4);
  for (size_t i = 0; i < count; ++i) {  // partial Fisher–Yates
    std::swap(pool[i], pool[i + rng.Below(pool.size() - i)]);
  }
  std::vector<std::string> tags;
  tags.reserve(3);
  for (size_t i = 0; i < count; ++i) tags.emplace_back(kTags[pool[i]]);
  if (rng.Below(1000) < kVipPerMille) {
    if (tags.size() == 3) tags.pop_back();
    tags.emplace_back(kTags[0]);
  }
  return tags;
}

// Profiles draw from their own generator, so that profile n is the same whatever was
// generated before it.
uint64_t ProfileSeed(uint64_t seed, uint64_t n) {
  uint64_t state = seed ^ 0x5ca1ab1e0ddba11ULL;
  const uint64_t mixed = SplitMix64(&state);
  state = mixed ^ n;
  return SplitMix64(&state);
}

}  // namespace

// ---- Workload ----------------------------------------------------------------------

Workload::Workload(const WorkloadOptions& options)
    : options_(options),
      rng_(options.seed),
      key_zipf_(std::max<uint64_t>(options.profiles, 1), options.zipf_exponent) {}

void Workload::AppendKey(uint64_t n, std::string* out) {
  out->push_back('u');
  AppendUint(n, out);
}

std::string Workload::Key(uint64_t n) {
  std::string key;
  AppendKey(n, &key);
  return key;
}

ProfileData Workload::MakeProfile(uint64_t n, int64_t now_ms) const {
  ProfileData profile;
  MakeProfile(n, now_ms, &profile);
  return profile;
}

void Workload::MakeProfile(uint64_t n, int64_t now_ms, ProfileData* profile) const {
  Rng rng(ProfileSeed(options_.seed, n));
  profile->key.clear();
  AppendKey(n, &profile->key);
  profile->segments.clear();

  NamedValues& a = profile->attributes;
  a.resize(9);
  SetString(&a[0], "country", kCountries[PickCountry(rng)]);
  SetString(&a[1], "device", kDevices[PickPercent(rng, kDeviceBounds)]);
  SetString(&a[2], "plan", kPlans[PickPercent(rng, kPlanBounds)]);
  a[3] = {"age", Value::Int(18 + static_cast<int64_t>(rng.Below(63)))};
  a[4] = {"ltv", Value::Float(LongTailedLtv(rng))};
  std::string email = profile->key;
  email.push_back('@');
  email.append(kEmailDomains[PickPercent(rng, kEmailDomainBounds)]);
  a[5] = {"email", Value::String(std::move(email))};
  a[6] = {"signup_at",
          Value::Time(now_ms - 1 - static_cast<int64_t>(rng.Below(kSignupSpanMs - 1)))};
  a[7] = {"tags", Value::List(MakeTags(rng))};
  a[8] = {"newsletter", Value::Bool(rng.Below(10) < 3)};

  // Times in (now - span, now), sorted; types and properties drawn afterwards.
  std::array<int64_t, kHistoryEvents> times;
  for (int64_t& t : times) t = now_ms - 1 - static_cast<int64_t>(rng.Below(kHistorySpanMs - 1));
  std::sort(times.begin(), times.end());
  profile->events.resize(kHistoryEvents);
  std::string order_id;
  for (int64_t i = 0; i < kHistoryEvents; ++i) {
    const auto type = static_cast<EventType>(PickPercent(rng, kEventBounds));
    if (type == kPurchaseType) {  // "h{n}-{i}": unique, and apart from the stream's
      order_id.assign("h");
      AppendUint(n, &order_id);
      order_id.push_back('-');
      AppendUint(static_cast<uint64_t>(i), &order_id);
    }
    FillEvent(rng, type, times[i], order_id, &profile->events[i]);
  }
}

uint64_t Workload::NextKeyIndex() {
  if (options_.skew == KeySkew::kZipf) return key_zipf_.Sample(rng_) - 1;
  return rng_.Below(std::max<uint64_t>(options_.profiles, 1));
}

ProfileUpdate Workload::NextUpdate(int64_t now_ms) {
  ProfileUpdate update;
  NextUpdate(now_ms, &update);
  return update;
}

void Workload::NextUpdate(int64_t now_ms, ProfileUpdate* update) {
  update->key.clear();
  AppendKey(NextKeyIndex(), &update->key);
  update->set.clear();
  update->unset.clear();
  update->increment.clear();
  update->del = false;

  const auto type = static_cast<EventType>(PickPercent(rng_, kEventBounds));
  char order_id[24] = "o";
  size_t order_id_size = 0;
  if (type == kPurchaseType) {
    order_id_size =
        std::to_chars(order_id + 1, order_id + sizeof order_id, next_order_++).ptr - order_id;
  }
  update->events.resize(1);
  const double amount =
      FillEvent(rng_, type, now_ms, std::string_view(order_id, order_id_size), &update->events[0]);

  if (rng_.Below(100) < kAttributeUpdatePercent) {
    if (type == kPurchaseType) {
      update->increment.emplace_back("ltv", Value::Float(amount));
    } else {
      update->set.emplace_back("plan",
                               Value::String(std::string(kPlans[PickPercent(rng_, kPlanBounds)])));
    }
  }
}

std::vector<SegmentSpec> Workload::StandardSegments() {
  return {
      {"dk_mobile", R"(country = "DK" and device in ["ios", "android"])", "Danish mobile users"},
      {"adults_pro", R"(age >= 30 and plan in ["pro", "enterprise"])", "Adults on paid-up plans"},
      {"gmail", R"(email ends_with "@gmail.com")", "Gmail addresses"},
      {"high_ltv", "ltv > 500", "Lifetime value above 500"},
      {"active_7d", "did(page_view within 7d)", "Viewed a page in the last week"},
      {"engaged", "count(page_view within 1d) >= 5", "Five page views in a day"},
      {"cart_abandoner", "did(add_to_cart within 1d) and not did(purchase within 1d)",
       "Added to cart but did not buy today"},
      {"buyer_30d", "did(purchase within 30d)", "Bought in the last 30 days"},
      {"big_spender", "sum(purchase.amount within 30d) > 200", "Spent over 200 in 30 days"},
      {"funnel_complete", "sequence(page_view, add_to_cart, purchase within 7d)",
       "Viewed, added and bought within a week"},
      {"dormant", "not did(login within 14d)", "No login for two weeks"},
      {"newsletter_clicker", "newsletter = true and did(email_click within 7d)",
       "Subscribers who clicked an email this week"},
      {"new_user", "signup_at > now() - 7d", "Signed up in the last week"},
      {"shoe_browser", R"(count(page_view where url starts_with "/shoes" within 3d) >= 2)",
       "Browsed shoes twice in three days"},
      {"tagged_vip", R"(tags contains "vip")", "Tagged vip"},
      {"avg_order_high", "avg(purchase.amount within 90d) >= 80", "Average order of 80 or more"},
      {"multi_category", "count_distinct(page_view.category within 7d) >= 3",
       "Browsed three categories this week"},
      {"vip", R"(in_segment("big_spender") and in_segment("active_7d"))", "Active big spenders"},
      {"at_risk_vip", R"(in_segment("vip") and not did(page_view within 2d))",
       "VIPs who stopped browsing"},
      {"recent_mobile", R"(last(login) > now() - 1h and device != "web")",
       "Logged in on mobile in the last hour"},
  };
}

}  // namespace segd
