/* bench_report.c: what `axon bench` prints: the summary table, --json,
 * and --html (one self-contained page: the data inline, charts drawn as
 * SVG by inline script, no request leaves the page). */
#include <stdio.h>
#include <string.h>

#include "bench.h"

static const double pcts[] = {50, 75, 90, 99, 99.9, 99.99};
static const char *const pct_names[] = {"p50", "p75", "p90", "p99", "p99.9", "p99.99"};
#define NPCT (sizeof pcts / sizeof pcts[0])

static bool is_fanout(const bench_cfg *cfg)
{
    return cfg->kind == BK_WS_HUB || cfg->kind == BK_MQTT || cfg->kind == BK_SSE;
}

static const char *unit(const bench_cfg *cfg)
{
    return is_fanout(cfg) ? "deliveries" : cfg->kind == BK_HTTP ? "requests" : "messages";
}

static void fmt_us(char *buf, size_t cap, uint64_t us)
{
    if (us < 10000)
        snprintf(buf, cap, "%llu us", (unsigned long long)us);
    else if (us < 10000000)
        snprintf(buf, cap, "%.2f ms", (double)us / 1000.0);
    else
        snprintf(buf, cap, "%.2f s", (double)us / 1e6);
}

static void fmt_bytes(char *buf, size_t cap, double bps)
{
    if (bps >= 1e9)
        snprintf(buf, cap, "%.2f GB/s", bps / 1e9);
    else if (bps >= 1e6)
        snprintf(buf, cap, "%.2f MB/s", bps / 1e6);
    else
        snprintf(buf, cap, "%.1f kB/s", bps / 1e3);
}

static double per_s(const bench_result *r, uint64_t n)
{
    return r->secs > 0 ? (double)n / r->secs : 0.0;
}

void bench_print_text(const bench_result *r, FILE *out)
{
    const bench_cfg *cfg = r->cfg;
    char a[32], b[32];
    fprintf(out, "axon bench %s\n", cfg->url);
    if (cfg->rate > 0)
        fprintf(out, "  load         open loop at %.0f/s (latency from each intended send time)\n",
                cfg->rate);
    else
        fprintf(out, "  load         closed loop, %d in flight per connection\n", cfg->depth);
    fprintf(out, "  time         %.2f s measured, %d thread%s\n", r->secs, cfg->threads,
            cfg->threads == 1 ? "" : "s");
    fprintf(out, "  connections  %d asked, %d reached%s\n", r->conns_asked, r->conns_reached,
            r->conns_reached < r->conns_asked ? "   <-- NOT ALL CONNECTED" : "");
    if (is_fanout(cfg))
        fprintf(out, "  subscribers  %d asked, %d subscribed%s\n", r->subs_asked, r->subs_ready,
                r->subs_ready < r->subs_asked ? "   <-- NOT ALL SUBSCRIBED" : "");
    fprintf(out, "  %-12s %llu (%.1f/s)\n", unit(cfg), (unsigned long long)r->done,
            per_s(r, r->done));
    if (is_fanout(cfg))
        fprintf(out, "  published    %llu (%.1f/s), lost %llu, reordered %llu\n",
                (unsigned long long)r->published, per_s(r, r->published),
                (unsigned long long)r->lost, (unsigned long long)r->reordered);
    fmt_bytes(a, sizeof a, per_s(r, r->bytes_in));
    fmt_bytes(b, sizeof b, per_s(r, r->bytes_out));
    fprintf(out, "  transfer     %s in, %s out\n", a, b);
    fprintf(out, "  latency     ");
    for (size_t i = 0; i < NPCT; i++)
        fprintf(out, " %9s", pct_names[i]);
    fprintf(out, " %9s %9s\n", "max", "mean");
    fprintf(out, "  (us)        ");
    for (size_t i = 0; i < NPCT; i++)
        fprintf(out, " %9llu", (unsigned long long)bench_hist_pct(r->lat, pcts[i]));
    fprintf(out, " %9llu %9.0f\n", (unsigned long long)r->lat->max, bench_hist_mean(r->lat));
    if (cfg->rate > 0) {
        /* Beside it, the figure a tool without the correction would give:
         * from the actual send, hiding the time requests queued behind a
         * slow reply (coordinated omission). */
        fprintf(out, "  from send   ");
        for (size_t i = 0; i < NPCT; i++)
            fprintf(out, " %9llu", (unsigned long long)bench_hist_pct(r->lat_sent, pcts[i]));
        fprintf(out, " %9llu %9.0f   (uncorrected)\n", (unsigned long long)r->lat_sent->max,
                bench_hist_mean(r->lat_sent));
    }
    if (r->unanswered)
        fprintf(out, "  unanswered   %llu still in flight when the run ended\n",
                (unsigned long long)r->unanswered);
    if (r->nerrs == 0) fprintf(out, "  errors       none\n");
    for (int i = 0; i < r->nerrs; i++)
        fprintf(out, "  %-12s %llu  %s\n", i == 0 ? "errors" : "", (unsigned long long)r->errs[i].n,
                r->errs[i].kind);
    fprintf(out, "  generator    CPU %.0f%% of a core (busiest thread)", r->cpu * 100);
    if (r->cpu_wait >= 0.05) fprintf(out, ", waiting for a CPU %.0f%%", r->cpu_wait * 100);
    if (cfg->rate > 0) {
        fmt_us(a, sizeof a, bench_hist_pct(r->lag, 99));
        fmt_us(b, sizeof b, r->lag->max);
        fprintf(out, ", schedule lag p99 %s, max %s", a, b);
    }
    fputc('\n', out);
    if (r->valid)
        fprintf(out, "  self-check   ok: the generator was not the limit\n");
    else
        fprintf(out, "  self-check   INVALID: %s\n", r->why);
}

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20 || ch == '<')
            fprintf(out, "\\u%04x", ch); /* '<': safe inside <script> */
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static const char *mode_name(const bench_cfg *cfg)
{
    return cfg->rate > 0 ? "open" : "closed";
}

void bench_print_json(const bench_result *r, FILE *out)
{
    const bench_cfg *cfg = r->cfg;
    fprintf(out, "{\"url\":");
    json_str(out, cfg->url);
    fprintf(out, ",\"mode\":\"%s\",\"rate\":%.3f,\"threads\":%d,\"depth\":%d,\"size\":%zu",
            mode_name(cfg), cfg->rate, cfg->threads, cfg->depth, cfg->size);
    fprintf(out, ",\"ramp\":%.3f,\"warmup\":%.3f", cfg->ramp, cfg->warmup);
    fprintf(out, ",\"seconds\":%.3f,\"connections\":{\"asked\":%d,\"reached\":%d}", r->secs,
            r->conns_asked, r->conns_reached);
    fprintf(out, ",\"count\":%llu,\"per_second\":%.1f,\"unit\":\"%s\"", (unsigned long long)r->done,
            per_s(r, r->done), unit(cfg));
    fprintf(out, ",\"bytes_in_per_second\":%.0f,\"bytes_out_per_second\":%.0f",
            per_s(r, r->bytes_in), per_s(r, r->bytes_out));
    if (is_fanout(cfg))
        fprintf(
            out,
            ",\"fanout\":{\"publishers\":%d,\"subscribers_per_topic\":%d,\"subscribers_asked\":%d,"
            "\"subscribers_ready\":%d,\"qos\":%d,\"published\":%llu,\"published_per_second\":%.1f,"
            "\"deliveries\":%llu,\"deliveries_per_second\":%.1f,\"lost\":%llu,\"reordered\":%llu}",
            cfg->pubs, cfg->subs, r->subs_asked, r->subs_ready, cfg->qos,
            (unsigned long long)r->published, per_s(r, r->published), (unsigned long long)r->done,
            per_s(r, r->done), (unsigned long long)r->lost, (unsigned long long)r->reordered);
    fprintf(out, ",\"latency_us\":{");
    for (size_t i = 0; i < NPCT; i++)
        fprintf(out, "\"%s\":%llu,", pct_names[i],
                (unsigned long long)bench_hist_pct(r->lat, pcts[i]));
    fprintf(out, "\"min\":%llu,\"max\":%llu,\"mean\":%.1f}", (unsigned long long)r->lat->min,
            (unsigned long long)r->lat->max, bench_hist_mean(r->lat));
    /* From the actual send time (what wrk, and wrk2's --u_latency, show);
     * the same as latency_us in a closed loop. */
    fprintf(out, ",\"latency_from_send_us\":{");
    for (size_t i = 0; i < NPCT; i++)
        fprintf(out, "\"%s\":%llu,", pct_names[i],
                (unsigned long long)bench_hist_pct(r->lat_sent, pcts[i]));
    fprintf(out, "\"max\":%llu,\"mean\":%.1f}", (unsigned long long)r->lat_sent->max,
            bench_hist_mean(r->lat_sent));
    fprintf(out, ",\"unanswered\":%llu,\"errors\":%llu,\"errors_by_kind\":{",
            (unsigned long long)r->unanswered, (unsigned long long)r->errors);
    for (int i = 0; i < r->nerrs; i++) {
        if (i) fputc(',', out);
        json_str(out, r->errs[i].kind);
        fprintf(out, ":%llu", (unsigned long long)r->errs[i].n);
    }
    fprintf(out,
            "},\"generator\":{\"cpu\":%.3f,\"cpu_wait\":%.3f,\"cpu_process\":%.3f,"
            "\"lag_p99_us\":%llu,\"lag_max_us\":%llu,\"valid\":%s,\"why\":",
            r->cpu, r->cpu_wait, r->cpu_total, (unsigned long long)bench_hist_pct(r->lag, 99),
            (unsigned long long)r->lag->max, r->valid ? "true" : "false");
    json_str(out, r->why);
    fprintf(out, "},\"timeline\":[");
    for (int i = 0; i < r->ntl; i++) {
        const bench_point *p = &r->tl[i];
        fprintf(out,
                "%s{\"t\":%.3f,\"count\":%llu,\"errors\":%llu,\"bytes\":%llu,\"p50_us\":%llu,"
                "\"p99_us\":%llu,\"max_us\":%llu}",
                i ? "," : "", p->t, (unsigned long long)p->count, (unsigned long long)p->errors,
                (unsigned long long)p->bytes, (unsigned long long)p->p50,
                (unsigned long long)p->p99, (unsigned long long)p->max);
    }
    fprintf(out, "],\"histogram\":[");
    /* The distribution, bucket by bucket: [highest value, count]. */
    bool first = true;
    for (size_t i = 0; i < BH_BUCKETS; i++) {
        if (!r->lat->b[i]) continue;
        uint64_t lo, hi;
        bench_hist_range(i, &lo, &hi);
        fprintf(out, "%s[%llu,%llu]", first ? "" : ",", (unsigned long long)hi,
                (unsigned long long)r->lat->b[i]);
        first = false;
    }
    fprintf(out, "]}\n");
}

/* The page: the JSON above as data, and a script that draws two SVG
 * charts from it (latency by percentile on the usual 1/(1-p) axis, and
 * rate and p99 over time). */
static const char page_head[] =
    "<!doctype html>\n<html><head><meta charset=\"utf-8\">\n"
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
    "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
    "<title>axon bench</title>\n<style>\n"
    "body{font:14px system-ui,sans-serif;margin:2em;color:#222}\n"
    "table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right}\n"
    "th{text-align:left}svg{background:#fafafa;border:1px solid #ddd;margin:1em 0}\n"
    ".bad{color:#b00;font-weight:bold}.ok{color:#080}\n"
    "</style></head><body>\n<h1>axon bench</h1>\n<div id=\"sum\"></div>\n"
    "<h2>Latency by percentile</h2>\n<svg id=\"pct\" width=\"760\" height=\"320\"></svg>\n"
    "<h2>Rate and p99 over time</h2>\n<svg id=\"time\" width=\"760\" height=\"320\"></svg>\n"
    "<script id=\"data\" type=\"application/json\">\n";

static const char page_tail[] =
    "</script>\n<script>\n"
    "const D=JSON.parse(document.getElementById('data').textContent);\n"
    "const NS='http://www.w3.org/2000/svg';\n"
    "function el(p,n,a,t){const e=document.createElementNS(NS,n);for(const k in "
    "a)e.setAttribute(k,a[k]);"
    "if(t!==undefined)e.textContent=t;p.appendChild(e);return e;}\n"
    "function esc(s){return "
    "String(s).replace(/[&<>]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;'}[c]));}\n"
    "function fmt(us){return us<10000?us+' us':us<1e7?(us/1000).toFixed(2)+' "
    "ms':(us/1e6).toFixed(2)+' s';}\n"
    "const L=D.latency_us;let h='<p>'+esc(D.url)+' &mdash; '+D.mode+' loop'+(D.rate?' at "
    "'+D.rate+'/s':'')"
    "+', '+D.connections.reached+' of '+D.connections.asked+' connections, "
    "'+D.seconds.toFixed(2)+' s</p>';\n"
    "h+='<table><tr><th>'+D.unit+'/s</th><td>'+D.per_second.toFixed(1)+'</td></tr>';\n"
    "for(const k of "
    "['p50','p90','p99','p99.9','p99.99','max'])h+='<tr><th>'+k+'</th><td>'+fmt(L[k])+'</td></"
    "tr>';\n"
    "h+='<tr><th>errors</th><td>'+D.errors+'</td></tr></table>';\n"
    "h+=D.generator.valid?'<p class=ok>self-check: the generator was not the limit</p>'"
    ":'<p class=bad>INVALID RUN: '+esc(D.generator.why)+'</p>';\n"
    "document.getElementById('sum').innerHTML=h;\n"
    "function axes(s,W,H,m){el(s,'line',{x1:m,y1:H-m,x2:W-10,y2:H-m,stroke:'#888'});"
    "el(s,'line',{x1:m,y1:10,x2:m,y2:H-m,stroke:'#888'});}\n"
    "(function(){const s=document.getElementById('pct'),W=760,H=320,m=60;axes(s,W,H,m);\n"
    "const tot=D.histogram.reduce((a,b)=>a+b[1],0);if(!tot)return;let c=0;const pts=[];\n"
    "for(const [v,n] of D.histogram){c+=n;const "
    "p=Math.min(c/tot,0.999999);pts.push([Math.log10(1/(1-p)),v]);}\n"
    "const xmax=Math.max(4,...pts.map(p=>p[0])),ymax=Math.max(...pts.map(p=>p[1]))*1.05||1;\n"
    "const X=x=>m+(W-m-10)*x/xmax,Y=y=>H-m-(H-m-10)*y/ymax;\n"
    "el(s,'polyline',{points:pts.map(p=>X(p[0])+','+Y(p[1])).join(' "
    "'),fill:'none',stroke:'#36c','stroke-width':2});\n"
    "['0%','90%','99%','99.9%','99.99%','99.999%'].forEach((t,i)=>{if(i<=xmax){"
    "el(s,'text',{x:X(i)-12,y:H-m+18,'font-size':11},t);}});\n"
    "for(let i=0;i<=4;i++){const "
    "v=ymax*i/4;el(s,'text',{x:2,y:Y(v)+4,'font-size':11},fmt(Math.round(v)));}\n"
    "})();\n"
    "(function(){const s=document.getElementById('time'),W=760,H=320,m=60;axes(s,W,H,m);\n"
    "const T=D.timeline;if(!T.length)return;const tmax=Math.max(...T.map(p=>p.t))||1;\n"
    "const "
    "rmax=Math.max(...T.map(p=>p.count))*1.1||1,lmax=Math.max(...T.map(p=>p.p99_us))*1.1||1;\n"
    "const X=t=>m+(W-m-60)*t/tmax;\n"
    "el(s,'polyline',{points:T.map(p=>X(p.t)+','+(H-m-(H-m-10)*p.count/rmax)).join(' "
    "'),fill:'none',stroke:'#36c','stroke-width':2});\n"
    "el(s,'polyline',{points:T.map(p=>X(p.t)+','+(H-m-(H-m-10)*p.p99_us/lmax)).join(' "
    "'),fill:'none',stroke:'#c63','stroke-width':2});\n"
    "el(s,'text',{x:m+5,y:20,fill:'#36c','font-size':12},D.unit+'/s (max "
    "'+Math.round(rmax/1.1)+')');\n"
    "el(s,'text',{x:m+5,y:36,fill:'#c63','font-size':12},'p99 (max "
    "'+fmt(Math.round(lmax/1.1))+')');\n"
    "el(s,'text',{x:W-60,y:H-m+18,'font-size':11},tmax.toFixed(0)+' s');\n"
    "})();\n"
    "</script></body></html>\n";

int bench_write_html(const bench_result *r, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(page_head, f);
    bench_print_json(r, f);
    fputs(page_tail, f);
    return fclose(f) == 0 ? 0 : -1;
}
