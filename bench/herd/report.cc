// Table, JSON, CSV and SVG output (report.h). The SVG is written by hand: three stacked panels
// sharing a time axis, log scales where corral and Redis differ by orders of magnitude.
#include "bench/herd/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/herd/driver.h"

namespace corral::herd {

namespace {

std::string Num(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string Extras(const RunResult& r) {
  std::string out;
  for (const auto& [k, v] : r.extra) {
    if (!out.empty()) out += ' ';
    const bool ratio = k.starts_with("goodput_ratio");  // 0.9987, not 1.00
    out += k + "=" + Num(v, std::fabs(v - std::round(v)) < 1e-9 ? 0 : ratio ? 4 : 2);
  }
  return out;
}

bool IsSteady(const std::string& scenario) {
  return scenario == "expiry-storm" || scenario == "vicious-cycle" || scenario == "hit" ||
         scenario == "rolling";
}

// ---- SVG ----------------------------------------------------------------------------------------

const char* TargetColor(const std::string& target) {
  if (target == "corral") return "#1b9e77";
  if (target == "redis-naive") return "#d95f02";
  if (target == "redis-lock") return "#7570b3";
  return "#666666";
}

enum class Scale { kLinear, kLog, kSymlog };

struct Panel {
  std::string title;
  Scale scale;
  double top;     // pixel y of the plot area's top
  double height;  // of the plot area
  double lo, hi;  // data range shown (log: lo > 0)
};

constexpr double kWidth = 1000, kLeft = 80, kRight = 240, kPlotW = kWidth - kLeft - kRight;

double Transform(const Panel& p, double v) {
  switch (p.scale) {
    case Scale::kLinear:
      return v;
    case Scale::kLog:
      return std::log10(std::max(v, p.lo));
    case Scale::kSymlog:
      return std::log10(1 + std::max(v, 0.0));
  }
  return v;
}

double Y(const Panel& p, double v) {
  double a = Transform(p, p.lo), b = Transform(p, p.hi);
  double f = b > a ? (Transform(p, v) - a) / (b - a) : 0;
  f = std::clamp(f, 0.0, 1.0);
  return p.top + p.height * (1 - f);
}

std::string TickLabel(double v) {
  auto scaled = [](double x, const char* unit) {
    return Num(x, std::fabs(x - std::round(x)) < 1e-9 ? 0 : 1) + unit;
  };
  if (v >= 1e6) return scaled(v / 1e6, "M");
  if (v >= 1e3) return scaled(v / 1e3, "k");
  if (v >= 1) return Num(v, 0);
  if (v >= 0.1) return Num(v, 1);
  if (v > 0) return Num(v, 2);
  return "0";
}

// The smallest of 1, 2, 5 × 10^k that is >= v.
double NiceCeil(double v) {
  if (v <= 0) return 1;
  double e = std::pow(10, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (v <= m * e) return m * e;
  }
  return 10 * e;
}

std::vector<double> Ticks(const Panel& p) {
  std::vector<double> t;
  if (p.scale == Scale::kLinear) {
    const double step = NiceCeil((p.hi - p.lo) / 5);
    for (double v = p.lo; v <= p.hi + step * 1e-6; v += step) t.push_back(v);
    return t;
  }
  if (p.scale == Scale::kSymlog) t.push_back(0);
  for (double v = p.scale == Scale::kLog ? p.lo : 1; v <= p.hi * 1.0001; v *= 10) t.push_back(v);
  return t;
}

void DrawPanelFrame(std::ostringstream& s, const Panel& p, double t_max, bool x_labels,
                    const std::vector<std::pair<double, double>>& shaded, const std::string& band) {
  auto x = [&](double t) { return kLeft + kPlotW * std::clamp(t / t_max, 0.0, 1.0); };
  double label_at = t_max;
  for (const auto& [from, to] : shaded) {
    if (to <= 0 || from >= t_max) continue;
    label_at = std::min(label_at, from);
    s << "<rect x='" << Num(x(from)) << "' y='" << Num(p.top) << "' width='"
      << Num(std::max(1.0, x(to) - x(from))) << "' height='" << Num(p.height)
      << "' fill='#f2e6c9'/>\n";
  }
  if (!band.empty() && label_at < t_max) {
    s << "<text x='" << Num(x(label_at) + 3) << "' y='" << Num(p.top + 12)
      << "' font-size='10' fill='#8a6d1d'>" << Escape(band) << "</text>\n";
  }
  s << "<rect x='" << kLeft << "' y='" << Num(p.top) << "' width='" << kPlotW << "' height='"
    << Num(p.height) << "' fill='none' stroke='#333'/>\n";
  s << "<text x='" << kLeft << "' y='" << Num(p.top - 8) << "' font-size='13' font-weight='bold'>"
    << Escape(p.title) << "</text>\n";
  for (double v : Ticks(p)) {
    double y = Y(p, v);
    s << "<line x1='" << kLeft << "' x2='" << kLeft + kPlotW << "' y1='" << Num(y) << "' y2='"
      << Num(y) << "' stroke='#ddd'/>\n";
    s << "<text x='" << kLeft - 6 << "' y='" << Num(y + 4) << "' font-size='11' text-anchor='end'>"
      << TickLabel(v) << "</text>\n";
  }
  double step = NiceCeil(t_max / 10);
  for (double t = 0; t <= t_max + 1e-9; t += step) {
    s << "<line x1='" << Num(x(t)) << "' x2='" << Num(x(t)) << "' y1='" << Num(p.top + p.height)
      << "' y2='" << Num(p.top + p.height + 4) << "' stroke='#333'/>\n";
    if (x_labels) {
      s << "<text x='" << Num(x(t)) << "' y='" << Num(p.top + p.height + 16)
        << "' font-size='11' text-anchor='middle'>" << TickLabel(t) << "</text>\n";
    }
  }
}

// Draws `points` (t, v; v < 0 = no data there, skipped) as one path, with a dot on each point
// when there are few (a herd that is over in 200 ms is one or two points).
void DrawLine(std::ostringstream& s, const Panel& p, double t_max,
              const std::vector<std::pair<double, double>>& points, const char* color,
              bool dashed) {
  std::string d;
  std::vector<std::pair<double, double>> xy;
  for (const auto& [t, v] : points) {
    if (v < 0 || t > t_max) continue;
    xy.push_back({kLeft + kPlotW * std::clamp(t / t_max, 0.0, 1.0), Y(p, v)});
    d += (d.empty() ? "M" : " L") + Num(xy.back().first) + " " + Num(xy.back().second);
  }
  if (d.empty()) return;
  s << "<path d='" << d << "' fill='none' stroke='" << color << "' stroke-width='1.8'"
    << (dashed ? " stroke-dasharray='5 3'" : "") << "/>\n";
  if (xy.size() <= 40) {
    for (const auto& [x, y] : xy) {
      s << "<circle cx='" << Num(x) << "' cy='" << Num(y) << "' r='3' fill='" << color << "'/>\n";
    }
  }
}

// Averages equally spaced (t, v) points over bins of `bin` seconds, so that a long run is not
// drawn as a solid block of 100 ms spikes. Points with v < 0 are skipped.
std::vector<std::pair<double, double>> Rebin(const std::vector<std::pair<double, double>>& points,
                                             double bin) {
  std::map<long, std::pair<double, int>> bins;
  for (const auto& [t, v] : points) {
    if (v < 0) continue;
    auto& b = bins[static_cast<long>(t / bin)];
    b.first += v;
    ++b.second;
  }
  std::vector<std::pair<double, double>> out;
  for (const auto& [k, b] : bins) out.push_back({(k + 0.5) * bin, b.first / b.second});
  return out;
}

nlohmann::ordered_json TrafficJson(const SteadyTraffic& t) {
  nlohmann::ordered_json j;
  j["namespace"] = t.ns;
  j["query"] = t.query;
  j["ttl_ms"] = t.ttl_ms;
  j["hot_keys"] = t.hot_keys;
  j["zipf"] = t.zipf_s;
  j["rate"] = t.rate;
  j["clients"] = t.clients;
  j["timeout_ms"] = t.timeout_ms;
  j["retries"] = t.retries;
  j["db_delay_ms"] = t.db_delay_ms;
  return j;
}

// The table's target column: "corral x3" for three nodes, "corral x3+L2" when they share a tier.
std::string TargetLabel(const RunResult& r) {
  if (r.nodes <= 1 && !r.shared_tier) return r.target;
  return r.target + " x" + std::to_string(r.nodes) + (r.shared_tier ? "+L2" : "");
}

}  // namespace

std::string DescribeScenario(const Options& o, const std::string& scenario) {
  if (scenario == "cold") {
    return std::to_string(o.clients) + " clients, one cold key, all at once; namespace " + o.ns;
  }
  if (scenario == "keys") {
    return std::to_string(o.keys) + " cold keys x " + std::to_string(o.clients_per_key) +
           " clients each; namespace " + o.ns;
  }
  if (scenario == "expiry-storm") {
    const SteadyTraffic& t = o.storm;
    return std::to_string(t.hot_keys) + " keys filled at once (TTL " + std::to_string(t.ttl_ms) +
           " ms), then Zipf(" + Num(t.zipf_s, 1) + ") traffic at " + Num(t.rate, 0) + "/s for " +
           Num(o.duration_s, 0) + " s; DB " + Num(t.db_delay_ms, 0) + " ms; namespace " + t.ns;
  }
  if (scenario == "vicious-cycle") {
    const SteadyTraffic& t = o.cycle;
    return Num(t.rate, 0) + " req/s Zipf over " + std::to_string(t.hot_keys) + " keys (TTL " +
           std::to_string(t.ttl_ms) + " ms); DB " + Num(t.db_delay_ms, 0) + " ms, x" +
           Num(o.slow_factor, 0) + " from " + Num(o.vc_warm_s, 0) + " s for " +
           Num(o.vc_slow_s, 0) + " s; timeout " + std::to_string(t.timeout_ms) + " ms, " +
           std::to_string(t.retries) + " retries; namespace " + t.ns;
  }
  if (scenario == "rolling") {
    const SteadyTraffic& t = o.steady;
    return std::to_string(t.hot_keys) + " keys loaded on each of " +
           std::to_string(o.corral.size()) + " nodes (TTL " + std::to_string(t.ttl_ms) +
           " ms), then " + (t.zipf_s > 0 ? "Zipf(" + Num(t.zipf_s, 1) + ")" : "uniform") +
           " traffic at " + Num(t.rate, 0) + "/s over " + std::to_string(t.clients) +
           " clients; restart command after " + Num(o.rolling_warm_s, 0) + " s, " +
           Num(o.rolling_after_s, 0) + " s after it; timeout " + std::to_string(t.timeout_ms) +
           " ms, " + std::to_string(t.retries) + " retries; namespace " + t.ns;
  }
  if (scenario == "hit") {
    return std::to_string(o.hit_clients) + " closed-loop clients on " + std::to_string(o.hit_keys) +
           " pre-filled keys for " + Num(o.hit_duration_s, 0) + " s; namespace " + o.steady.ns;
  }
  return scenario;
}

void PrintTable(const Options& o, const std::vector<RunResult>& runs, std::ostream& out) {
  for (const auto& scenario : o.scenarios) {
    bool any = false;
    for (const auto& r : runs) any |= r.scenario == scenario;
    if (!any) continue;
    out << "\n== " << scenario << ": " << DescribeScenario(o, scenario) << " ==\n";
    char line[512];
    std::snprintf(line, sizeof line, "%-12s %3s %9s %7s %6s %10s %11s %7s %9s %9s %9s %9s %10s\n",
                  "target", "rnd", "requests", "errors", "wrong", "DB queries", "peak DB q/s",
                  "DB run", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "goodput/s");
    out << line;
    for (const auto& r : runs) {
      if (r.scenario != scenario) continue;
      std::snprintf(
          line, sizeof line,
          "%-12s %3d %9lld %7lld %6lld %10lld %11.0f %7d %9.2f %9.2f %9.2f %9.2f %10.1f\n",
          TargetLabel(r).c_str(), r.round, (long long)r.requests, (long long)r.errors,
          (long long)r.wrong, (long long)r.db_queries, r.peak_db_qps, r.peak_db_active, r.p50_ms,
          r.p99_ms, r.p999_ms, r.max_ms, r.goodput);
      out << line;
    }
    for (const auto& r : runs) {
      if (r.scenario != scenario) continue;
      std::string detail = Extras(r);
      if (r.fill_db_queries >= 0) detail += " fill_db_queries=" + std::to_string(r.fill_db_queries);
      if (r.errors > 0) {
        detail += " timeouts=" + std::to_string(r.timeouts) + " busy=" + std::to_string(r.busy) +
                  " other=" + std::to_string(r.other_errors) + " first_error=\"" + r.first_error +
                  "\"";
      }
      if (!r.note.empty()) detail += " note: " + r.note;
      out << "  " << TargetLabel(r) << " r" << r.round << ": keys " << r.key_range << "; " << detail
          << "\n";
    }
  }
}

std::string RenderSvg(const std::string& scenario, const std::string& subtitle,
                      const std::vector<const RunResult*>& runs) {
  const bool steady = IsSteady(scenario);
  double t_max = 0.5, qps_max = 1, p99_max = 1, p99_min = 1e9, good_max = 1;
  for (const RunResult* r : runs) {
    for (const auto& p : r->db_series) {
      t_max = std::max(t_max, p.t_s);
      qps_max = std::max(qps_max, p.qps);
    }
    for (const auto& p : r->client_series) {
      t_max = std::max(t_max, p.t_s);
      if (p.p99_ms >= 0) {
        p99_max = std::max(p99_max, p.p99_ms);
        if (p.p99_ms > 0) p99_min = std::min(p99_min, p.p99_ms);
      }
      good_max = std::max(good_max, p.goodput);
    }
  }
  {
    const double step = NiceCeil(t_max / 6);
    t_max = std::ceil(t_max / step - 1e-9) * step;
  }
  double p99_lo = std::pow(10, std::floor(std::log10(std::min(p99_min, p99_max))));
  if (!(p99_lo > 0) || p99_lo > p99_max) p99_lo = 0.01;
  p99_lo = std::max(p99_lo, 0.01);

  // About one point per 4 pixels; rates are averaged over that bin when it exceeds 100 ms.
  const double bin = std::max(0.1, NiceCeil(t_max / 150));
  const std::string averaged = bin > 0.1 ? ", mean per " + Num(bin, bin < 1 ? 1 : 0) + " s" : "";
  std::vector<Panel> panels;
  double top = 80;
  const double h = 200, gap = 60;
  panels.push_back({"DB queries/s (pg_stat_statements, all nodes; log scale" + averaged + ")",
                    Scale::kSymlog, top, h, 0, std::pow(10, std::ceil(std::log10(qps_max)))});
  top += h + gap;
  panels.push_back({"p99 latency, ms (requests completing in each 100 ms; log scale)", Scale::kLog,
                    top, h, p99_lo, std::pow(10, std::ceil(std::log10(p99_max)))});
  top += h + gap;
  if (steady) {
    const double step = NiceCeil(good_max / 5);
    panels.push_back({"goodput, answers/s (per 100 ms" + averaged + ")", Scale::kLinear, top, h, 0,
                      std::ceil(good_max / step) * step});
    top += h + gap;
  }
  const double height = top + 10;
  std::string band = scenario == "vicious-cycle"  ? "DB slowed"
                     : scenario == "expiry-storm" ? "TTLs run out"
                     : scenario == "rolling"      ? "restarting"
                                                  : "";

  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << kWidth << "' height='" << Num(height)
    << "' viewBox='0 0 " << kWidth << " " << Num(height)
    << "' font-family='Helvetica, Arial, sans-serif'>\n";
  s << "<rect width='100%' height='100%' fill='white'/>\n";
  s << "<text x='" << kLeft
    << "' y='28' font-size='18' font-weight='bold'>corral-herd: " << Escape(scenario)
    << "</text>\n";
  s << "<text x='" << kLeft << "' y='48' font-size='12' fill='#444'>" << Escape(subtitle)
    << "</text>\n";
  std::vector<std::pair<double, double>> shaded;
  for (const RunResult* r : runs) {
    for (const auto& range : r->shaded) shaded.push_back(range);
  }
  // Each run's own phase (fills take different times); overlapping bands read as their union.
  for (size_t i = 0; i < panels.size(); ++i) {
    DrawPanelFrame(s, panels[i], t_max, true, shaded, band);
  }
  const Panel& last = panels.back();
  s << "<text x='" << Num(kLeft + kPlotW / 2) << "' y='" << Num(last.top + last.height + 34)
    << "' font-size='12' text-anchor='middle'>seconds since the measured window began</text>\n";

  for (const RunResult* r : runs) {
    const char* color = TargetColor(r->target);
    bool dashed = r->round > 1;
    std::vector<std::pair<double, double>> pts;
    for (const auto& p : r->db_series) pts.push_back({p.t_s, p.qps});
    DrawLine(s, panels[0], t_max, bin > 0.1 ? Rebin(pts, bin) : pts, color, dashed);
    pts.clear();
    for (const auto& p : r->client_series) pts.push_back({p.t_s, p.p99_ms});
    DrawLine(s, panels[1], t_max, pts, color, dashed);
    if (steady) {
      pts.clear();
      for (const auto& p : r->client_series) pts.push_back({p.t_s, p.goodput});
      DrawLine(s, panels[2], t_max, bin > 0.1 ? Rebin(pts, bin) : pts, color, dashed);
    }
  }
  // Legend with each run's headline figures.
  double ly = panels[0].top + 4;
  const double lx = kLeft + kPlotW + 16;
  for (const RunResult* r : runs) {
    const char* color = TargetColor(r->target);
    s << "<line x1='" << lx << "' x2='" << lx + 22 << "' y1='" << Num(ly + 6) << "' y2='"
      << Num(ly + 6) << "' stroke='" << color << "' stroke-width='3'"
      << (r->round > 1 ? " stroke-dasharray='5 3'" : "") << "/>\n";
    std::string name =
        r->target + (r->round > 1 ? " (round " + std::to_string(r->round) + ")" : "");
    s << "<text x='" << lx + 28 << "' y='" << Num(ly + 10) << "' font-size='12' font-weight='bold'>"
      << Escape(name) << "</text>\n";
    std::string l1 = std::to_string(r->db_queries) +
                     (r->db_queries == 1 ? " DB query" : " DB queries") + ", peak " +
                     Num(r->peak_db_qps, 0) + "/s";
    std::string l2 = "p99 " + Num(r->p99_ms, 1) + " ms, " + std::to_string(r->errors) + " errors";
    std::string l3 = "goodput " + Num(r->goodput, 0) + "/s";
    s << "<text x='" << lx + 28 << "' y='" << Num(ly + 25) << "' font-size='11' fill='#333'>"
      << Escape(l1) << "</text>\n";
    s << "<text x='" << lx + 28 << "' y='" << Num(ly + 39) << "' font-size='11' fill='#333'>"
      << Escape(l2) << "</text>\n";
    s << "<text x='" << lx + 28 << "' y='" << Num(ly + 53) << "' font-size='11' fill='#333'>"
      << Escape(l3) << "</text>\n";
    ly += 68;
  }
  s << "</svg>\n";
  return s.str();
}

std::string WriteOutputs(const Options& o, const std::vector<RunResult>& runs,
                         const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return dir + ": " + ec.message();

  nlohmann::ordered_json doc;
  nlohmann::ordered_json opts;
  opts["scenarios"] = o.scenarios;
  std::vector<std::string> targets;
  for (TargetKind t : o.targets) targets.push_back(TargetName(t));
  opts["targets"] = targets;
  std::vector<std::string> corral;
  for (const Endpoint& e : o.corral) corral.push_back(e.host + ":" + std::to_string(e.port));
  opts["corral"] = corral.front();  // the first node, as before several nodes were possible
  opts["corral_nodes"] = corral;
  opts["shared_tier"] = o.shared_tier;
  opts["redis"] = o.redis.host + ":" + std::to_string(o.redis.port);
  opts["namespace"] = o.ns;
  opts["query"] = o.query;
  opts["ttl_ms"] = o.ttl_ms;
  opts["clients"] = o.clients;
  opts["keys"] = o.keys;
  opts["clients_per_key"] = o.clients_per_key;
  opts["timeout_ms"] = o.timeout_ms;
  opts["hit"] = TrafficJson(o.steady);
  opts["expiry_storm"] = TrafficJson(o.storm);
  opts["expiry_storm"]["duration_s"] = o.duration_s;
  opts["vicious_cycle"] = TrafficJson(o.cycle);
  opts["vicious_cycle"]["slow_factor"] = o.slow_factor;
  opts["vicious_cycle"]["phases_s"] = {o.vc_warm_s, o.vc_slow_s, o.vc_recover_s};
  opts["hit_keys"] = o.hit_keys;
  opts["hit_clients"] = o.hit_clients;
  opts["hit_duration_s"] = o.hit_duration_s;
  opts["db_connections_per_replica"] = o.db_connections;
  opts["repeat"] = o.repeat;
  doc["options"] = opts;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& r : runs) {
    nlohmann::ordered_json j;
    j["scenario"] = r.scenario;
    j["target"] = r.target;
    j["round"] = r.round;
    j["nodes"] = r.nodes;
    j["shared_tier"] = r.shared_tier;
    j["keys"] = r.key_range;
    j["requests"] = r.requests;
    j["answers"] = r.answers;
    j["errors"] = r.errors;
    j["timeouts"] = r.timeouts;
    j["busy"] = r.busy;
    j["other_errors"] = r.other_errors;
    j["wrong"] = r.wrong;
    j["attempts"] = r.attempts;
    j["db_queries"] = r.db_queries;
    if (r.fill_db_queries >= 0) j["fill_db_queries"] = r.fill_db_queries;
    j["peak_db_qps"] = r.peak_db_qps;
    j["peak_db_running"] = r.peak_db_active;
    j["latency_ms"] = {
        {"p50", r.p50_ms}, {"p99", r.p99_ms}, {"p999", r.p999_ms}, {"max", r.max_ms}};
    j["duration_s"] = r.duration_s;
    j["client_stall"] = {{"max_ms", r.client_stall_ms},
                         {"at_s", r.client_stall_at_s},
                         {"on_cpu_ms", r.client_stall_cpu_ms}};
    j["goodput"] = r.goodput;
    nlohmann::ordered_json extra = nlohmann::ordered_json::object();
    for (const auto& [k, v] : r.extra) extra[k] = v;
    j["extra"] = extra;
    if (!r.first_error.empty()) j["first_error"] = r.first_error;
    if (!r.note.empty()) j["note"] = r.note;
    nlohmann::ordered_json db = nlohmann::ordered_json::array();
    for (const auto& p : r.db_series) db.push_back({p.t_s, p.qps, p.active});
    j["db_series"] = {{"columns", {"t_s", "queries_per_s", "running"}}, {"rows", db}};
    nlohmann::ordered_json cs = nlohmann::ordered_json::array();
    for (const auto& p : r.client_series) cs.push_back({p.t_s, p.p99_ms, p.goodput});
    j["client_series"] = {{"columns", {"t_s", "p99_ms", "goodput"}}, {"rows", cs}};
    if (!r.corral_series.empty()) {
      // One column per series any poll saw, in order of first sight; null where a poll lacked it.
      std::vector<std::string> names;
      for (const auto& p : r.corral_series) {
        for (const auto& [name, value] : p.values) {
          if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
        }
      }
      nlohmann::ordered_json columns = {"t_s", "nodes_answered"};
      for (const auto& name : names) columns.push_back(name);
      nlohmann::ordered_json rows = nlohmann::ordered_json::array();
      for (const auto& p : r.corral_series) {
        nlohmann::ordered_json row = {p.t_s, p.answered};
        for (const auto& name : names) {
          const double v = MetricValue(p, name, -1);
          if (v < 0) {
            row.push_back(nullptr);
          } else {
            row.push_back(v);
          }
        }
        rows.push_back(row);
      }
      j["corral_metrics_series"] = {{"columns", columns}, {"rows", rows}};
    }
    list.push_back(j);
  }
  doc["runs"] = list;
  {
    std::ofstream f(dir + "/results.json");
    f << doc.dump(1) << "\n";
    if (!f) return dir + "/results.json: write failed";
  }
  {
    std::ofstream f(dir + "/results.csv");
    f << "scenario,target,round,requests,answers,errors,timeouts,busy,other_errors,wrong,"
         "attempts,db_queries,fill_db_queries,peak_db_qps,peak_db_running,p50_ms,p99_ms,"
         "p999_ms,max_ms,duration_s,goodput,client_stall_ms,extra,note,nodes,shared_tier\n";
    for (const auto& r : runs) {
      f << r.scenario << ',' << r.target << ',' << r.round << ',' << r.requests << ',' << r.answers
        << ',' << r.errors << ',' << r.timeouts << ',' << r.busy << ',' << r.other_errors << ','
        << r.wrong << ',' << r.attempts << ',' << r.db_queries << ','
        << (r.fill_db_queries >= 0 ? std::to_string(r.fill_db_queries) : "") << ','
        << Num(r.peak_db_qps, 1) << ',' << r.peak_db_active << ',' << Num(r.p50_ms, 3) << ','
        << Num(r.p99_ms, 3) << ',' << Num(r.p999_ms, 3) << ',' << Num(r.max_ms, 3) << ','
        << Num(r.duration_s, 3) << ',' << Num(r.goodput, 1) << ',' << Num(r.client_stall_ms, 1)
        << ',' << CsvField(Extras(r)) << ',' << CsvField(r.note) << ',' << r.nodes << ','
        << (r.shared_tier ? 1 : 0) << "\n";
    }
    if (!f) return dir + "/results.csv: write failed";
  }
  for (const auto& scenario : o.scenarios) {
    std::vector<const RunResult*> these;
    for (const auto& r : runs) {
      if (r.scenario == scenario) these.push_back(&r);
    }
    if (these.empty()) continue;
    std::ofstream f(dir + "/" + scenario + ".svg");
    f << RenderSvg(scenario, DescribeScenario(o, scenario), these);
    if (!f) return dir + "/" + scenario + ".svg: write failed";
  }
  return "";
}

}  // namespace corral::herd
