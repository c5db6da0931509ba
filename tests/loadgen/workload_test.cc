#include "loadgen/workload.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <set>
#include <string>

namespace segd {
namespace {

constexpr int64_t kNow = 1'700'000'000'000;
constexpr int kSamples = 100'000;

const Value* Find(const NamedValues& values, std::string_view name) {
  for (const auto& [n, v] : values) {
    if (n == name) return &v;
  }
  return nullptr;
}

void RequireSameUpdate(const ProfileUpdate& a, const ProfileUpdate& b) {
  REQUIRE(a.key == b.key);
  REQUIRE(a.set == b.set);
  REQUIRE(a.unset == b.unset);
  REQUIRE(a.increment == b.increment);
  REQUIRE(a.events == b.events);
  REQUIRE(a.del == b.del);
}

double Share(const std::map<std::string, int>& counts, const std::string& key, int total) {
  auto it = counts.find(key);
  return it == counts.end() ? 0.0 : static_cast<double>(it->second) / total;
}

TEST_CASE("Workload is deterministic for a fixed seed", "[loadgen]") {
  WorkloadOptions options;
  options.profiles = 1000;
  options.seed = 301;
  Workload a(options), b(options);
  for (uint64_t n : {0, 1, 7, 999}) REQUIRE(a.MakeProfile(n, kNow) == b.MakeProfile(n, kNow));
  // A profile does not depend on what was generated before it.
  Workload c(options);
  REQUIRE(c.MakeProfile(7, kNow) == a.MakeProfile(7, kNow));

  ProfileData refilled;  // the reusing overload makes the same profiles, whatever it held
  refilled.segments = {"stale"};
  for (uint64_t n = 0; n < 200; ++n) {
    a.MakeProfile(n, kNow, &refilled);
    REQUIRE(refilled == a.MakeProfile(n, kNow));
  }

  ProfileUpdate reused;
  for (int i = 0; i < 2000; ++i) {
    const ProfileUpdate ua = a.NextUpdate(kNow + i);
    b.NextUpdate(kNow + i, &reused);  // the reusing overload draws the same stream
    RequireSameUpdate(ua, reused);
  }

  options.seed = 302;
  Workload d(options);
  REQUIRE_FALSE(d.MakeProfile(7, kNow) == a.MakeProfile(7, kNow));
}

TEST_CASE("Workload keys are u{n} within the profile count", "[loadgen]") {
  REQUIRE(Workload::Key(0) == "u0");
  REQUIRE(Workload::Key(3'999'999) == "u3999999");
  WorkloadOptions options;
  options.profiles = 100;
  Workload w(options);
  const ProfileData p = w.MakeProfile(42, kNow);
  REQUIRE(p.key == "u42");
  REQUIRE(Find(p.attributes, "email")->string_value().starts_with("u42@"));

  std::set<std::string> seen;
  for (int i = 0; i < 10'000; ++i) {
    const std::string key = w.NextUpdate(kNow).key;
    REQUIRE(key[0] == 'u');
    REQUIRE(std::stoull(key.substr(1)) < 100);
    REQUIRE(Workload::Key(std::stoull(key.substr(1))) == key);
    seen.insert(key);
  }
  REQUIRE(seen.size() == 100);  // uniform: every key is hit
}

TEST_CASE("Workload profile attributes follow BENCHMARK.md", "[loadgen]") {
  WorkloadOptions options;
  options.profiles = kSamples;
  Workload w(options);
  std::map<std::string, int> country, device, plan, domain;
  int newsletter = 0, vip = 0, high_ltv = 0;
  for (int n = 0; n < kSamples; ++n) {
    const ProfileData p = w.MakeProfile(n, kNow);
    REQUIRE(p.attributes.size() == 9);
    ++country[Find(p.attributes, "country")->string_value()];
    ++device[Find(p.attributes, "device")->string_value()];
    ++plan[Find(p.attributes, "plan")->string_value()];
    const int64_t age = Find(p.attributes, "age")->int_value();
    REQUIRE((age >= 18 && age <= 80));
    const double ltv = Find(p.attributes, "ltv")->float_value();
    REQUIRE((ltv >= 0 && ltv <= 2000));
    high_ltv += ltv > 500;
    const std::string& email = Find(p.attributes, "email")->string_value();
    ++domain[email.substr(email.find('@') + 1)];
    const Value* signup = Find(p.attributes, "signup_at");
    REQUIRE(signup->kind() == ValueKind::kTime);
    REQUIRE(signup->time_value() < kNow);
    REQUIRE(signup->time_value() > kNow - Workload::kSignupSpanMs);
    const auto& tags = Find(p.attributes, "tags")->list_value();
    REQUIRE(tags.size() <= 3);
    REQUIRE(std::set<std::string>(tags.begin(), tags.end()).size() == tags.size());
    vip += std::count(tags.begin(), tags.end(), "vip") > 0;
    newsletter += Find(p.attributes, "newsletter")->bool_value();
  }
  REQUIRE(country.size() == 30);
  for (const char* first : {"DK", "SE", "NO", "DE", "US"}) REQUIRE(country.count(first));
  REQUIRE(country["DK"] > country["SE"]);
  REQUIRE(country["SE"] > country["NO"]);
  REQUIRE(country["NO"] > country["DE"]);
  REQUIRE(country["DE"] > country["US"]);
  REQUIRE(country["US"] > country["LV"]);
  REQUIRE(Share(device, "ios", kSamples) == Approx(0.40).margin(0.01));
  REQUIRE(Share(device, "android", kSamples) == Approx(0.40).margin(0.01));
  REQUIRE(Share(device, "web", kSamples) == Approx(0.20).margin(0.01));
  REQUIRE(Share(plan, "free", kSamples) == Approx(0.60).margin(0.01));
  REQUIRE(Share(plan, "basic", kSamples) == Approx(0.25).margin(0.01));
  REQUIRE(Share(plan, "pro", kSamples) == Approx(0.12).margin(0.01));
  REQUIRE(Share(plan, "enterprise", kSamples) == Approx(0.03).margin(0.005));
  REQUIRE(domain.size() == 8);
  for (const auto& [d, c] : domain) REQUIRE(c <= domain["gmail.com"]);
  REQUIRE(static_cast<double>(newsletter) / kSamples == Approx(0.30).margin(0.01));
  REQUIRE(static_cast<double>(vip) / kSamples == Approx(0.02).margin(0.003));
  // Long-tailed: few, but some, profiles above 500.
  REQUIRE(static_cast<double>(high_ltv) / kSamples == Approx(0.08).margin(0.01));
}

TEST_CASE("Workload histories hold 20 events in time order within 30 days", "[loadgen]") {
  WorkloadOptions options;
  options.profiles = 10'000;
  Workload w(options);
  std::map<std::string, int> types;
  std::set<std::string> order_ids;
  int events = 0;
  for (uint64_t n = 0; n < options.profiles; ++n) {
    const ProfileData p = w.MakeProfile(n, kNow);
    REQUIRE(p.events.size() == 20);
    for (size_t i = 0; i < p.events.size(); ++i) {
      const Event& e = p.events[i];
      REQUIRE(e.time < kNow);
      REQUIRE(e.time > kNow - Workload::kHistorySpanMs);
      if (i > 0) REQUIRE(p.events[i - 1].time <= e.time);
      ++types[e.type];
      ++events;
      if (e.type == Workload::kPurchase) {
        REQUIRE(order_ids.insert(Find(e.properties, "order_id")->string_value()).second);
        const double amount = Find(e.properties, "amount")->float_value();
        REQUIRE((amount >= 5 && amount <= 500));
      }
    }
  }
  REQUIRE(Share(types, "page_view", events) == Approx(0.70).margin(0.01));
  REQUIRE(Share(types, "purchase", events) == Approx(0.05).margin(0.005));
}

TEST_CASE("Workload update stream follows the mix", "[loadgen]") {
  WorkloadOptions options;
  options.profiles = 1'000'000;
  Workload w(options);
  std::map<std::string, int> types;
  std::set<std::string> order_ids, sections, categories;
  int attribute_updates = 0, ltv_increments = 0;
  for (int i = 0; i < kSamples; ++i) {
    const ProfileUpdate u = w.NextUpdate(kNow + i);
    REQUIRE(u.events.size() == 1);
    REQUIRE_FALSE(u.del);
    REQUIRE(u.unset.empty());
    const Event& e = u.events[0];
    REQUIRE(e.time == kNow + i);
    ++types[e.type];
    if (e.type == Workload::kPageView) {
      const std::string& url = Find(e.properties, "url")->string_value();
      REQUIRE(url[0] == '/');
      sections.insert(url.substr(0, url.find('/', 1)));
      categories.insert(Find(e.properties, "category")->string_value());
    } else if (e.type == Workload::kAddToCart) {
      REQUIRE(Find(e.properties, "sku") != nullptr);
      REQUIRE(Find(e.properties, "price")->kind() == ValueKind::kFloat);
    } else if (e.type == Workload::kPurchase) {
      REQUIRE(order_ids.insert(Find(e.properties, "order_id")->string_value()).second);
    } else if (e.type == Workload::kLogin) {
      REQUIRE(Find(e.properties, "method") != nullptr);
    } else {
      REQUIRE(e.type == Workload::kEmailClick);
      REQUIRE(Find(e.properties, "campaign") != nullptr);
    }
    if (!u.set.empty() || !u.increment.empty()) {
      ++attribute_updates;
      REQUIRE(u.set.size() + u.increment.size() == 1);
      if (!u.increment.empty()) {
        ++ltv_increments;
        REQUIRE(e.type == Workload::kPurchase);
        REQUIRE(u.increment[0].first == "ltv");
        REQUIRE(u.increment[0].second == *Find(e.properties, "amount"));
      } else {
        REQUIRE(u.set[0].first == "plan");
      }
    }
  }
  REQUIRE(Share(types, "page_view", kSamples) == Approx(0.70).margin(0.01));
  REQUIRE(Share(types, "add_to_cart", kSamples) == Approx(0.15).margin(0.01));
  REQUIRE(Share(types, "purchase", kSamples) == Approx(0.05).margin(0.005));
  REQUIRE(Share(types, "login", kSamples) == Approx(0.07).margin(0.005));
  REQUIRE(Share(types, "email_click", kSamples) == Approx(0.03).margin(0.005));
  REQUIRE(static_cast<double>(attribute_updates) / kSamples == Approx(0.10).margin(0.005));
  REQUIRE(static_cast<double>(ltv_increments) / kSamples == Approx(0.005).margin(0.002));
  REQUIRE(sections.size() == 12);
  REQUIRE(sections.count("/shoes"));
  REQUIRE(categories.size() == 12);
}

TEST_CASE("Workload Zipf keys favour the first keys", "[loadgen]") {
  WorkloadOptions options;
  options.profiles = 4'000'000;
  options.skew = KeySkew::kZipf;
  Workload w(options);
  double harmonic = 0;
  for (uint64_t k = 1; k <= options.profiles; ++k) harmonic += std::pow(k, -0.99);
  std::map<std::string, int> counts;
  for (int i = 0; i < kSamples; ++i) ++counts[w.NextUpdate(kNow).key];
  REQUIRE(Share(counts, "u0", kSamples) == Approx(1 / harmonic).margin(0.005));
  REQUIRE(Share(counts, "u1", kSamples) == Approx(std::pow(2, -0.99) / harmonic).margin(0.004));
  for (const auto& [key, c] : counts) REQUIRE(std::stoull(key.substr(1)) < options.profiles);
}

TEST_CASE("ZipfSampler stays in range and matches small exact distributions", "[loadgen]") {
  Rng rng(7);
  ZipfSampler zipf(3, 1.0);
  std::array<int, 4> counts{};
  for (int i = 0; i < kSamples; ++i) {
    const uint64_t k = zipf.Sample(rng);
    REQUIRE((k >= 1 && k <= 3));
    ++counts[k];
  }
  const double h = 1 + 0.5 + 1.0 / 3;
  REQUIRE(counts[1] / double(kSamples) == Approx(1 / h).margin(0.01));
  REQUIRE(counts[3] / double(kSamples) == Approx(1 / 3.0 / h).margin(0.01));
}

TEST_CASE("Workload standard segments are the 20 of BENCHMARK.md", "[loadgen]") {
  const std::vector<SegmentSpec> segments = Workload::StandardSegments();
  REQUIRE(segments.size() == 20);
  std::set<std::string> ids;
  for (const SegmentSpec& s : segments) {
    REQUIRE_FALSE(s.rule.empty());
    ids.insert(s.id);
  }
  REQUIRE(ids == std::set<std::string>{"dk_mobile",       "adults_pro",     "gmail",
                                       "high_ltv",        "active_7d",      "engaged",
                                       "cart_abandoner",  "buyer_30d",      "big_spender",
                                       "funnel_complete", "dormant",        "newsletter_clicker",
                                       "new_user",        "shoe_browser",   "tagged_vip",
                                       "avg_order_high",  "multi_category", "vip",
                                       "at_risk_vip",     "recent_mobile"});
  // in_segment references come after the segments they name.
  auto index = [&](std::string_view id) {
    return std::find_if(segments.begin(), segments.end(),
                        [&](const SegmentSpec& s) { return s.id == id; }) -
           segments.begin();
  };
  REQUIRE(index("vip") > index("big_spender"));
  REQUIRE(index("at_risk_vip") > index("vip"));
  REQUIRE(segments[0].rule == R"(country = "DK" and device in ["ios", "android"])");
}

}  // namespace
}  // namespace segd
