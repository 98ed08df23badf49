//! `portstat top`'s view as plain data: the rows of the last readings (with when each appeared
//! or closed), the sort, the protocol and state toggles, the filter words, the selection, and
//! what each key does. No I/O and no drawing: the command feeds it readings and keys, the
//! renderer draws it, so every behaviour here is a unit test.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::core::cgroup::Manager;
use crate::core::firewall::eval::Reach;
use crate::core::model::{Entry, Proto, Socket, State, Zones};
use crate::core::query::{PortSpec, default_order, sort_in_listing_order};
use crate::core::stop::Plan;
use crate::core::target::Target;

/// How long a new row stays highlighted.
pub const NEW_FOR: Duration = Duration::from_secs(5);
/// How long a closed row stays on screen, marked, before it goes.
pub const CLOSED_FOR: Duration = Duration::from_secs(3);
/// How long a message (an error, a stop's outcome) stays in the status line.
pub const MESSAGE_FOR: Duration = Duration::from_secs(6);

/// A key as the view understands it; the terminal layer translates its events into these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    /// A letter with Ctrl held (Ctrl-C is `Ctrl('c')`).
    Ctrl(char),
    Enter,
    Esc,
    Backspace,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
}

/// What one socket is, across readings: a row keeps its place and its age while this stays
/// the same. The state is part of it, so a connection that closes into TIME_WAIT shows as
/// closed (and the TIME_WAIT as new), and the inode tells apart sockets bound alike
/// (SO_REUSEPORT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RowKey {
    pub netns: u64,
    pub proto: Proto,
    pub local: SocketAddr,
    pub remote: Option<SocketAddr>,
    pub state: State,
    pub inode: u64,
}

impl RowKey {
    pub fn of(socket: &Socket) -> RowKey {
        RowKey {
            netns: socket.netns,
            proto: socket.proto,
            local: socket.local,
            remote: socket.remote,
            state: socket.state,
            inode: socket.inode,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub entry: Entry,
    pub key: RowKey,
    /// When a reading first had it; `None` for the rows of the first reading (nothing is new
    /// when the view opens).
    pub appeared: Option<Duration>,
    /// When a reading first lacked it.
    pub closed: Option<Duration>,
}

impl Row {
    pub fn is_new(&self, now: Duration) -> bool {
        self.closed.is_none()
            && self
                .appeared
                .is_some_and(|at| now.saturating_sub(at) < NEW_FOR)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// A closed row whose time on screen is over.
    pub fn has_gone(&self, now: Duration) -> bool {
        self.closed
            .is_some_and(|closed| now.saturating_sub(closed) >= CLOSED_FOR)
    }
}

/// The table's columns, in the order shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Netns,
    Proto,
    Local,
    Remote,
    State,
    RecvQ,
    SendQ,
    Service,
    Process,
    User,
}

impl Column {
    /// Every column but NETNS, which shows only when several namespaces are read.
    pub const USUAL: [Column; 9] = [
        Column::Proto,
        Column::Local,
        Column::Remote,
        Column::State,
        Column::RecvQ,
        Column::SendQ,
        Column::Service,
        Column::Process,
        Column::User,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Column::Netns => "NETNS",
            Column::Proto => "PROTO",
            Column::Local => "LOCAL",
            Column::Remote => "REMOTE",
            Column::State => "STATE",
            Column::RecvQ => "RECV-Q",
            Column::SendQ => "SEND-Q",
            Column::Service => "SERVICE",
            Column::Process => "PID/PROGRAM",
            Column::User => "USER",
        }
    }

    /// How two entries compare in this column, either way; a row without a value (no owner,
    /// no peer, no queue read) sorts after those with one, whichever way the sort goes. Ties
    /// are left to the listing's default order.
    fn compare(self, a: &Entry, b: &Entry, descending: bool) -> Ordering {
        fn way(order: Ordering, descending: bool) -> Ordering {
            if descending { order.reverse() } else { order }
        }
        fn present_first<T: Ord>(x: Option<T>, y: Option<T>, descending: bool) -> Ordering {
            match (x, y) {
                (Some(x), Some(y)) => way(x.cmp(&y), descending),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
        }
        let (sa, sb) = (&a.socket, &b.socket);
        let end = |address: SocketAddr| (address.port(), address.ip());
        let process = |e: &Entry| e.processes.first().map(|p| (p.name.to_lowercase(), p.pid));
        // Names before bare uids.
        let user = |e: &Entry| match (&e.user, e.socket.uid) {
            (Some(name), _) => Some((0, name.to_string(), 0)),
            (None, Some(uid)) => Some((1, String::new(), uid)),
            (None, None) => None,
        };
        let d = descending;
        match self {
            Column::Netns => present_first(
                a.netns.as_ref().map(|ns| ns.short()),
                b.netns.as_ref().map(|ns| ns.short()),
                d,
            ),
            Column::Proto => way((sa.proto, sa.family()).cmp(&(sb.proto, sb.family())), d),
            Column::Local => way(end(sa.local).cmp(&end(sb.local)), d),
            Column::Remote => present_first(sa.remote.map(end), sb.remote.map(end), d),
            Column::State => way(sa.state.as_str().cmp(sb.state.as_str()), d),
            Column::RecvQ => present_first(sa.rx_queue, sb.rx_queue, d),
            Column::SendQ => present_first(sa.tx_queue, sb.tx_queue, d),
            Column::Service => present_first(service(a), service(b), d),
            Column::Process => present_first(process(a), process(b), d),
            Column::User => present_first(user(a), user(b), d),
        }
    }
}

/// The service that matters for a row, as the listing's SERVICE column picks it: the local
/// port's, unless the connection goes out.
pub fn service(entry: &Entry) -> Option<&'static str> {
    match entry.direction {
        Some(crate::core::model::Direction::Outbound) => entry.remote_service,
        _ => entry.local_service,
    }
}

/// `t` and `u`: which protocols show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protos {
    #[default]
    Both,
    Tcp,
    Udp,
}

impl Protos {
    pub fn shows(self, proto: Proto) -> bool {
        match self {
            Protos::Both => true,
            Protos::Tcp => proto == Proto::Tcp,
            Protos::Udp => proto == Proto::Udp,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Protos::Both => "tcp+udp",
            Protos::Tcp => "tcp",
            Protos::Udp => "udp",
        }
    }
}

/// `l`, `e` and `a`: which states show; the listing's default is listeners and established
/// connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum States {
    #[default]
    Usual,
    Listening,
    Established,
    All,
}

impl States {
    pub fn shows(self, state: State) -> bool {
        match self {
            States::Usual => state.is_listening() || state == State::Established,
            States::Listening => state.is_listening(),
            States::Established => state == State::Established,
            States::All => true,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            States::Usual => "listening+established",
            States::Listening => "listening",
            States::Established => "established",
            States::All => "all states",
        }
    }
}

/// The words typed after `/`: `port:5432 process:postgres state:listen user:www-data pid:42
/// proto:udp`, and bare words, each found anywhere in the row's text. Different fields must
/// all match; the same field given twice matches either (`port:80 port:443`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// As typed, shown in the header.
    pub text: String,
    pub ports: Vec<PortSpec>,
    /// Lower-cased parts of a process name.
    pub processes: Vec<String>,
    pub states: Vec<State>,
    /// Lower-cased user names, or uids.
    pub users: Vec<String>,
    pub pids: Vec<u32>,
    pub protos: Vec<Proto>,
    /// Lower-cased; each must be in the row's text.
    pub words: Vec<String>,
}

/// The filter fields, as `/`'s help names them.
pub const FILTER_FIELDS: [&str; 6] = ["port", "process", "state", "user", "pid", "proto"];

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, String> {
        let mut filter = Filter {
            text: text.trim().to_string(),
            ..Filter::default()
        };
        for word in text.split_whitespace() {
            let Some((field, value)) = word.split_once(':') else {
                filter.words.push(word.to_lowercase());
                continue;
            };
            // An address with a port (`127.0.0.1:80`, `[::1]:80`) is a bare word.
            if !field.chars().all(|c| c.is_ascii_alphabetic()) || field.is_empty() {
                filter.words.push(word.to_lowercase());
                continue;
            }
            if value.is_empty() {
                return Err(format!("{field}: needs a value ({field}:...)"));
            }
            match field.to_ascii_lowercase().as_str() {
                "port" => filter.ports.push(
                    value
                        .parse()
                        .map_err(|why| format!("port:{value}: {why}"))?,
                ),
                "process" => filter.processes.push(value.to_lowercase()),
                "state" => filter.states.push(State::parse(value).ok_or_else(|| {
                    format!("state:{value}: no such state (listen, established, time-wait, ...)")
                })?),
                "user" => filter.users.push(value.to_lowercase()),
                "pid" => filter.pids.push(
                    value
                        .parse()
                        .map_err(|_| format!("pid:{value}: not a process id"))?,
                ),
                "proto" => filter
                    .protos
                    .push(match value.to_ascii_lowercase().as_str() {
                        "tcp" => Proto::Tcp,
                        "udp" => Proto::Udp,
                        _ => return Err(format!("proto:{value}: tcp or udp")),
                    }),
                other => {
                    return Err(format!(
                        "unknown filter word {other}: (known: {})",
                        FILTER_FIELDS.join(", ")
                    ));
                }
            }
        }
        Ok(filter)
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn matches(&self, entry: &Entry) -> bool {
        let socket = &entry.socket;
        let ports = |spec: &PortSpec| {
            spec.contains(socket.local.port())
                || socket
                    .remote
                    .is_some_and(|remote| spec.contains(remote.port()))
        };
        let user = |wanted: &String| {
            entry
                .user
                .as_deref()
                .is_some_and(|name| name.to_lowercase() == *wanted)
                || socket.uid.is_some_and(|uid| uid.to_string() == *wanted)
        };
        let process = |wanted: &String| {
            entry
                .processes
                .iter()
                .any(|p| p.name.to_lowercase().contains(wanted.as_str()))
        };
        let any_or = |empty: bool, found: bool| empty || found;
        any_or(self.ports.is_empty(), self.ports.iter().any(ports))
            && any_or(
                self.processes.is_empty(),
                self.processes.iter().any(process),
            )
            && any_or(self.states.is_empty(), self.states.contains(&socket.state))
            && any_or(self.users.is_empty(), self.users.iter().any(user))
            && any_or(
                self.pids.is_empty(),
                entry.processes.iter().any(|p| self.pids.contains(&p.pid)),
            )
            && any_or(self.protos.is_empty(), self.protos.contains(&socket.proto))
            && (self.words.is_empty() || {
                let text = row_text(entry);
                self.words.iter().all(|word| text.contains(word.as_str()))
            })
    }
}

/// What a bare filter word is looked for in: the row as shown, lower-cased.
fn row_text(entry: &Entry) -> String {
    let socket = &entry.socket;
    let mut text = format!(
        "{} {} {} {}",
        socket.proto.as_str(),
        socket.local,
        socket
            .remote
            .map_or_else(|| "*".to_string(), |r| r.to_string()),
        socket.state.as_str()
    );
    for process in &entry.processes {
        text.push_str(&format!(" {}/{}", process.pid, process.name));
    }
    if let Some(user) = &entry.user {
        text.push(' ');
        text.push_str(user);
    }
    if let Some(service) = service(entry) {
        text.push(' ');
        text.push_str(service);
    }
    text.to_lowercase()
}

/// A holder `k` would stop, as the confirmation shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopTarget {
    pub pid: u32,
    pub name: String,
    /// Seconds since the Unix epoch.
    pub started: Option<u64>,
    /// The selected socket's own address, port and protocol: what `who --stop` is asked to free.
    pub socket: Target,
    /// What `who --stop` would do to free it, worked out before asking (empty until then): the
    /// confirmation shows it, and only that is done on `y`.
    pub plans: Vec<Plan>,
}

/// The details pane's facts beyond the row: loaded on demand, once per Enter.
#[derive(Debug, Clone, Default)]
pub struct Details {
    /// The socket read again with TCP internals, memory and timers, when it is still there.
    pub entry: Option<Entry>,
    /// What manages each holder (systemd unit, container), by pid.
    pub managers: HashMap<u32, Manager>,
    /// The firewall's verdict on new connections from beyond this host, for a listener.
    pub firewall: Option<Reach>,
    /// What could not be read for it.
    pub warnings: Vec<String>,
}

/// The details pane: the row it was opened on, and what was loaded for it.
#[derive(Debug, Clone)]
pub struct Pane {
    pub key: RowKey,
    pub entry: Entry,
    /// `None` while it loads.
    pub details: Option<Details>,
}

/// What the view is showing over the table, or taking keys for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Table,
    /// Typing a filter after `/`; the previous filter's text comes back on Esc.
    Filter {
        input: String,
        before: String,
    },
    Details,
    /// `k` asked: stop this holder? `y` says yes.
    Confirm(StopTarget),
    Help,
}

/// What the command must do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Nothing,
    Quit,
    /// Read the details of this socket (the pane is open, waiting for them).
    LoadDetails(RowKey),
    /// Work out what stopping this holder would do, then [`View::ask_stop`].
    PlanStop(StopTarget),
    /// Stop this holder: the user confirmed.
    Stop(StopTarget),
}

/// The rows of successive readings, with when each appeared or closed, in the listing's
/// order. The reading thread keeps one, so that merging, ordering and freeing 100k rows happens
/// there and not on the thread that answers keys; the view only takes the result.
#[derive(Debug, Default)]
pub struct Tracker {
    rows: Arc<Vec<Row>>,
    /// The rows before the last: the view has let them go by the next reading, so they are
    /// freed here.
    retired: Option<Arc<Vec<Row>>>,
    readings: u64,
}

impl Tracker {
    /// A new reading: rows it lacks are marked closed (and go after [`CLOSED_FOR`]), rows it
    /// adds are new (none in the first reading), the others are brought up to date and keep
    /// their age.
    pub fn update(&mut self, entries: Vec<Entry>, now: Duration) -> Arc<Vec<Row>> {
        let first = self.readings == 0;
        self.readings += 1;
        let old: HashMap<RowKey, Option<Duration>> = self
            .rows
            .iter()
            .filter(|row| row.closed.is_none())
            .map(|row| (row.key, row.appeared))
            .collect();
        let mut seen: HashSet<RowKey> = HashSet::with_capacity(entries.len());
        let mut rows = Vec::with_capacity(entries.len());
        for entry in entries {
            let key = RowKey::of(&entry.socket);
            let appeared = match old.get(&key) {
                Some(&appeared) => appeared,
                None if first => None,
                // New, or back after it went.
                None => Some(now),
            };
            seen.insert(key);
            rows.push(Row {
                entry,
                key,
                appeared,
                closed: None,
            });
        }
        rows.extend(
            self.rows
                .iter()
                .filter(|row| !seen.contains(&row.key))
                .filter_map(|row| {
                    let closed = row.closed.unwrap_or(now);
                    (now.saturating_sub(closed) < CLOSED_FOR).then(|| Row {
                        closed: Some(closed),
                        ..row.clone()
                    })
                }),
        );
        sort_in_listing_order(&mut rows, |row| &row.entry);
        let rows = Arc::new(rows);
        drop(self.retired.take());
        self.retired = Some(std::mem::replace(&mut self.rows, Arc::clone(&rows)));
        rows
    }
}

pub struct View {
    /// The last reading's rows, in the listing's order.
    rows: Arc<Vec<Row>>,
    /// Where the closed rows are among them, to let them go on time.
    closed: Vec<usize>,
    /// Merges readings given to [`View::update`] (the reading thread has its own).
    tracker: Tracker,
    /// Indexes into `rows` of those shown, in order.
    visible: Vec<usize>,
    /// The sort column and whether it runs descending; `None`: the listing's order (listeners
    /// first, then by port).
    pub sort: Option<(Column, bool)>,
    pub protos: Protos,
    pub states: States,
    pub filter: Filter,
    /// The selected row's place among the visible, and which socket it is.
    cursor: usize,
    selected: Option<RowKey>,
    /// The first visible row drawn, and how many are (PgUp and PgDn move by that).
    pub offset: usize,
    page: usize,
    pub mode: Mode,
    pub pane: Option<Pane>,
    message: Option<(String, Duration)>,
    pub warnings: Vec<String>,
    /// Readings so far.
    pub readings: u64,
    pub now: Duration,
    /// How long the last reading took.
    pub took: Option<Duration>,
    /// Whether several namespaces were read (the NETNS column shows).
    pub namespaces: bool,
    /// The interface names of the last reading's link-local zones.
    pub zones: Zones,
    /// The host's name, for the title.
    pub host: String,
    /// Whether to draw in colour (`--color`, NO_COLOR, CLICOLOR...).
    pub color: bool,
}

impl Default for View {
    fn default() -> View {
        View::new()
    }
}

impl View {
    pub fn new() -> View {
        View {
            rows: Arc::default(),
            closed: Vec::new(),
            tracker: Tracker::default(),
            visible: Vec::new(),
            sort: None,
            protos: Protos::default(),
            states: States::default(),
            filter: Filter::default(),
            cursor: 0,
            selected: None,
            offset: 0,
            page: 20,
            mode: Mode::Table,
            pane: None,
            message: None,
            warnings: Vec::new(),
            readings: 0,
            now: Duration::ZERO,
            took: None,
            namespaces: false,
            zones: Zones::default(),
            host: String::new(),
            color: true,
        }
    }

    /// A new reading, merged here (one thread does all: `--once`, the tests).
    pub fn update(&mut self, entries: Vec<Entry>, warnings: Vec<String>, now: Duration) {
        let rows = self.tracker.update(entries, now);
        self.show(rows, warnings, now);
    }

    /// A reading a [`Tracker`] merged.
    pub fn show(&mut self, rows: Arc<Vec<Row>>, warnings: Vec<String>, now: Duration) {
        self.readings += 1;
        self.now = now;
        self.warnings = warnings;
        self.namespaces = rows.iter().any(|row| row.entry.netns.is_some());
        self.closed = rows
            .iter()
            .enumerate()
            .filter(|(_, row)| row.is_closed())
            .map(|(index, _)| index)
            .collect();
        self.rows = rows;
        self.refilter();
    }

    /// Time passes: closed rows and old messages go.
    pub fn tick(&mut self, now: Duration) {
        self.now = now;
        if self
            .message
            .as_ref()
            .is_some_and(|(_, at)| now.saturating_sub(*at) >= MESSAGE_FOR)
        {
            self.message = None;
        }
        let rows = &self.rows;
        let before = self.closed.len();
        self.closed.retain(|&index| !rows[index].has_gone(now));
        if self.closed.len() != before {
            self.refilter();
        }
    }

    pub fn say(&mut self, message: impl Into<String>) {
        self.message = Some((message.into(), self.now));
    }

    pub fn message(&self) -> Option<&str> {
        self.message.as_ref().map(|(text, _)| text.as_str())
    }

    /// The columns shown.
    pub fn columns(&self) -> Vec<Column> {
        let mut columns = Vec::new();
        if self.namespaces {
            columns.push(Column::Netns);
        }
        columns.extend(Column::USUAL);
        columns
    }

    /// Every row read and not yet gone, the closed ones still shown included (as in the
    /// count of those shown).
    pub fn total(&self) -> usize {
        self.rows.len()
            - self
                .rows
                .iter()
                .filter(|row| row.has_gone(self.now))
                .count()
    }

    pub fn visible_len(&self) -> usize {
        self.visible.len()
    }

    /// The visible rows from `start`, at most `count`.
    pub fn visible_rows(&self, start: usize, count: usize) -> impl Iterator<Item = &Row> {
        self.visible
            .iter()
            .skip(start)
            .take(count)
            .map(|&index| &self.rows[index])
    }

    /// The selected row's place among the visible ones, when any is visible.
    pub fn cursor(&self) -> Option<usize> {
        (!self.visible.is_empty()).then_some(self.cursor)
    }

    pub fn selected_row(&self) -> Option<&Row> {
        self.cursor()
            .and_then(|cursor| self.visible.get(cursor))
            .map(|&index| &self.rows[index])
    }

    /// Keeps the selected row among the `height` rows drawn.
    pub fn scroll(&mut self, height: usize) {
        let height = height.max(1);
        self.page = height;
        if self.cursor < self.offset {
            self.offset = self.cursor;
        } else if self.cursor >= self.offset + height {
            self.offset = self.cursor + 1 - height;
        }
        self.offset = self.offset.min(self.visible.len().saturating_sub(height));
    }

    /// The details the command loaded for the pane; those of a pane since closed are dropped.
    pub fn set_details(&mut self, key: RowKey, details: Details) {
        if let Some(pane) = self.pane.as_mut().filter(|pane| pane.key == key) {
            pane.details = Some(details);
        }
    }

    /// Filters and sorts the rows again, keeping the selection on the same socket when it is
    /// still shown.
    fn refilter(&mut self) {
        let (protos, states, filter, now) = (self.protos, self.states, &self.filter, self.now);
        let mut visible: Vec<usize> = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, row)| {
                let socket = &row.entry.socket;
                !row.has_gone(now)
                    && protos.shows(socket.proto)
                    && states.shows(socket.state)
                    && filter.matches(&row.entry)
            })
            .map(|(index, _)| index)
            .collect();
        // The rows come in the listing's order: only another sort costs a sort here.
        if let Some((column, descending)) = self.sort {
            let rows = &self.rows;
            visible.sort_by(|a, b| {
                let (a, b) = (&rows[*a].entry, &rows[*b].entry);
                column
                    .compare(a, b, descending)
                    .then_with(|| default_order(a, b))
            });
        }
        self.visible = visible;
        match self
            .selected
            .and_then(|key| self.visible.iter().position(|&i| self.rows[i].key == key))
        {
            Some(place) => self.cursor = place,
            None => {
                self.cursor = self.cursor.min(self.visible.len().saturating_sub(1));
                self.selected = self.selected_row().map(|row| row.key);
            }
        }
    }

    fn select(&mut self, cursor: usize) {
        self.cursor = cursor.min(self.visible.len().saturating_sub(1));
        self.selected = self.selected_row().map(|row| row.key);
    }

    /// One key: what it changes here, and what the command must do.
    pub fn key(&mut self, key: Key) -> Action {
        if key == Key::Ctrl('c') {
            return Action::Quit;
        }
        match self.mode.clone() {
            Mode::Table => self.table_key(key),
            Mode::Filter { input, before } => {
                self.filter_key(key, input, before);
                Action::Nothing
            }
            Mode::Details => match key {
                Key::Esc | Key::Enter | Key::Char('q') => {
                    self.mode = Mode::Table;
                    self.pane = None;
                    Action::Nothing
                }
                Key::Char('k') => {
                    let entry = self.pane.as_ref().map(|pane| pane.entry.clone());
                    self.confirm_stop(entry.as_ref())
                }
                _ => Action::Nothing,
            },
            Mode::Confirm(target) => {
                self.mode = if self.pane.is_some() {
                    Mode::Details
                } else {
                    Mode::Table
                };
                match key {
                    Key::Char('y' | 'Y') => Action::Stop(target),
                    _ => {
                        self.say("not stopped");
                        Action::Nothing
                    }
                }
            }
            Mode::Help => {
                self.mode = Mode::Table;
                match key {
                    Key::Char('q') => Action::Quit,
                    _ => Action::Nothing,
                }
            }
        }
    }

    fn table_key(&mut self, key: Key) -> Action {
        match key {
            Key::Char('q') | Key::Esc => return Action::Quit,
            Key::Up => self.select(self.cursor.saturating_sub(1)),
            Key::Down => self.select(self.cursor + 1),
            Key::PageUp => self.select(self.cursor.saturating_sub(self.page)),
            Key::PageDown => self.select(self.cursor + self.page),
            Key::Home => self.select(0),
            Key::End => self.select(usize::MAX),
            Key::Left | Key::Char('<') => self.move_sort(-1),
            Key::Right | Key::Char('>') => self.move_sort(1),
            Key::Char('r') => {
                let columns = self.columns();
                let (column, descending) = self.sort.unwrap_or((columns[0], false));
                self.sort = Some((column, !descending));
                self.refilter();
            }
            Key::Char('0') => {
                self.sort = None;
                self.refilter();
            }
            Key::Char(digit @ '1'..='9') => {
                let columns = self.columns();
                let place = digit as usize - '1' as usize;
                if let Some(&column) = columns.get(place) {
                    self.sort = match self.sort {
                        Some((current, descending)) if current == column => {
                            Some((column, !descending))
                        }
                        _ => Some((column, false)),
                    };
                    self.refilter();
                }
            }
            Key::Char('t') => self.set_protos(Protos::Tcp),
            Key::Char('u') => self.set_protos(Protos::Udp),
            Key::Char('l') => self.set_states(States::Listening),
            Key::Char('e') => self.set_states(States::Established),
            Key::Char('a') => self.set_states(States::All),
            Key::Char('/') => {
                self.mode = Mode::Filter {
                    input: self.filter.text.clone(),
                    before: self.filter.text.clone(),
                };
            }
            Key::Char('?') => self.mode = Mode::Help,
            Key::Enter => {
                if let Some(row) = self.selected_row() {
                    let (key, entry) = (row.key, row.entry.clone());
                    self.pane = Some(Pane {
                        key,
                        entry,
                        details: None,
                    });
                    self.mode = Mode::Details;
                    return Action::LoadDetails(key);
                }
            }
            Key::Char('k') => {
                let entry = self.selected_row().map(|row| row.entry.clone());
                return self.confirm_stop(entry.as_ref());
            }
            _ => {}
        }
        Action::Nothing
    }

    /// The same key twice goes back: `t` then `t` shows both protocols again.
    fn set_protos(&mut self, protos: Protos) {
        self.protos = if self.protos == protos {
            Protos::Both
        } else {
            protos
        };
        self.refilter();
    }

    fn set_states(&mut self, states: States) {
        self.states = if self.states == states {
            States::Usual
        } else {
            states
        };
        self.refilter();
    }

    /// `<` and `>`: the sort moves to the column beside; from the listing's order, `>` starts
    /// at the first column and `<` at the last.
    fn move_sort(&mut self, step: isize) {
        let columns = self.columns();
        let last = columns.len() as isize - 1;
        let next = match self.sort {
            None if step > 0 => 0,
            None => last,
            Some((column, _)) => {
                let place = columns.iter().position(|&c| c == column).unwrap_or(0) as isize;
                (place + step).clamp(0, last)
            }
        };
        let descending = self.sort.is_some_and(|(_, descending)| descending);
        self.sort = Some((columns[next as usize], descending));
        self.refilter();
    }

    fn filter_key(&mut self, key: Key, mut input: String, before: String) {
        match key {
            Key::Esc => {
                // What was typed is dropped: the filter before it is back.
                self.filter = Filter::parse(&before).unwrap_or_default();
                self.mode = Mode::Table;
                self.refilter();
                return;
            }
            Key::Enter => {
                match Filter::parse(&input) {
                    Ok(filter) => {
                        self.filter = filter;
                        self.mode = Mode::Table;
                        self.refilter();
                    }
                    Err(why) => {
                        self.say(why);
                        self.mode = Mode::Filter { input, before };
                    }
                }
                return;
            }
            Key::Backspace => {
                input.pop();
            }
            Key::Ctrl('u') => input.clear(),
            Key::Char(c) => input.push(c),
            _ => {}
        }
        // The rows narrow as one types, while what is typed makes sense.
        if let Ok(filter) = Filter::parse(&input) {
            self.filter = filter;
            self.refilter();
        }
        self.mode = Mode::Filter { input, before };
    }

    /// `k`: asks whether to stop the socket's holder, the top-most one (a pre-forked server's
    /// master, whose workers go with it), naming its pid, name and start time.
    fn confirm_stop(&mut self, entry: Option<&Entry>) -> Action {
        let Some(entry) = entry else {
            self.say("no socket selected");
            return Action::Nothing;
        };
        let pids: Vec<u32> = entry.processes.iter().map(|p| p.pid).collect();
        let holder = entry
            .processes
            .iter()
            .find(|p| p.ppid.is_none_or(|parent| !pids.contains(&parent)));
        match holder {
            Some(process) => Action::PlanStop(StopTarget {
                pid: process.pid,
                name: process.name.clone(),
                started: process.started,
                socket: Target::of_socket(&entry.socket),
                plans: Vec::new(),
            }),
            None => {
                let why = entry
                    .owner_note
                    .map_or("no process holds it", |note| note.describe());
                self.say(format!("nothing to stop: {why}"));
                Action::Nothing
            }
        }
    }

    /// Asks whether to do what `target.plans` says.
    pub fn ask_stop(&mut self, target: StopTarget) {
        self.mode = Mode::Confirm(target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{OwnerNote, Process};

    fn entry(proto: Proto, local: &str, remote: Option<&str>, state: State) -> Entry {
        let mut socket = Socket::example(proto, local, remote, state);
        socket.inode = u64::from(socket.local.port()) * 1000 + remote.map_or(0, |_| 1);
        Entry::example(socket, Vec::new())
    }

    fn owned(mut entry: Entry, pid: u32, name: &str, user: &str) -> Entry {
        let process = Process::example(pid, name, Some(user));
        entry.processes = vec![process];
        entry.user = Some(Arc::from(user));
        entry
    }

    fn host() -> Vec<Entry> {
        vec![
            owned(
                entry(Proto::Tcp, "0.0.0.0:5432", None, State::Listen),
                300,
                "postgres",
                "postgres",
            ),
            owned(
                entry(Proto::Tcp, "0.0.0.0:80", None, State::Listen),
                100,
                "nginx",
                "www-data",
            ),
            owned(
                entry(
                    Proto::Tcp,
                    "10.0.0.5:80",
                    Some("10.0.0.9:50000"),
                    State::Established,
                ),
                100,
                "nginx",
                "www-data",
            ),
            owned(
                entry(Proto::Udp, "0.0.0.0:53", None, State::Unconn),
                200,
                "dnsmasq",
                "root",
            ),
            entry(
                Proto::Tcp,
                "10.0.0.5:80",
                Some("10.0.0.8:40000"),
                State::TimeWait,
            ),
        ]
    }

    fn ports(view: &View) -> Vec<u16> {
        view.visible_rows(0, usize::MAX)
            .map(|row| row.entry.socket.local.port())
            .collect()
    }

    fn view() -> View {
        let mut view = View::new();
        view.update(host(), Vec::new(), Duration::ZERO);
        view
    }

    fn typed(view: &mut View, text: &str) {
        for c in text.chars() {
            view.key(Key::Char(c));
        }
    }

    #[test]
    fn the_first_view_is_the_listings_default() {
        let view = view();
        // Listeners first, by port; TIME_WAIT hidden.
        assert_eq!(ports(&view), [53, 80, 5432, 80]);
        assert_eq!(view.total(), 5);
        assert!(
            view.visible_rows(0, 9)
                .all(|row| !row.is_new(Duration::ZERO))
        );
    }

    #[test]
    fn toggles_show_protocols_and_states_and_the_same_key_goes_back() {
        let mut view = view();
        view.key(Key::Char('t'));
        assert_eq!(ports(&view), [80, 5432, 80]);
        view.key(Key::Char('u'));
        assert_eq!(ports(&view), [53]);
        view.key(Key::Char('u'));
        assert_eq!(view.protos, Protos::Both);
        view.key(Key::Char('l'));
        assert_eq!(ports(&view), [53, 80, 5432]);
        view.key(Key::Char('e'));
        assert_eq!(ports(&view), [80]);
        view.key(Key::Char('a'));
        assert_eq!(view.visible_len(), 5);
        view.key(Key::Char('a'));
        assert_eq!(view.states, States::Usual);
        assert_eq!(view.visible_len(), 4);
    }

    #[test]
    fn filter_words_parse_into_fields() {
        let filter =
            Filter::parse("port:5432 process:Postgres state:listen user:www-data").expect("parses");
        assert!(filter.ports[0].contains(5432));
        assert_eq!(filter.processes, ["postgres"]);
        assert_eq!(filter.states, [State::Listen]);
        assert_eq!(filter.users, ["www-data"]);
        let filter = Filter::parse("pid:42 proto:UDP 127.0.0.1:80 nginx").expect("parses");
        assert_eq!(filter.pids, [42]);
        assert_eq!(filter.protos, [Proto::Udp]);
        assert_eq!(filter.words, ["127.0.0.1:80", "nginx"]);
        assert!(Filter::parse("  ").expect("empty").is_empty());
    }

    #[test]
    fn bad_filter_words_say_what_is_wrong() {
        let err = |text: &str| Filter::parse(text).expect_err(text);
        assert!(err("port:http").contains("port:http"));
        assert!(err("state:sleeping").contains("no such state"));
        assert!(err("pid:x").contains("not a process id"));
        assert!(err("proto:sctp").contains("tcp or udp"));
        assert!(err("colour:red").contains("unknown filter word colour"));
        assert!(err("port:").contains("needs a value"));
    }

    #[test]
    fn filters_narrow_and_combine() {
        let rows = host();
        let matching = |text: &str| -> Vec<u16> {
            let filter = Filter::parse(text).expect("parses");
            rows.iter()
                .filter(|e| filter.matches(e))
                .map(|e| e.socket.local.port())
                .collect()
        };
        assert_eq!(matching("port:5432"), [5432]);
        assert_eq!(matching("port:80 port:53"), [80, 80, 53, 80]);
        assert_eq!(matching("process:ngi state:listen"), [80]);
        assert_eq!(matching("user:WWW-DATA"), [80, 80]);
        assert_eq!(matching("user:1000"), [5432, 80, 80, 53, 80]);
        assert_eq!(matching("pid:200"), [53]);
        assert_eq!(matching("proto:udp"), [53]);
        assert_eq!(matching("10.0.0.9"), [80]);
        assert_eq!(matching("dnsmasq 0.0.0.0"), [53]);
        assert_eq!(matching("time_wait"), [80]);
    }

    #[test]
    fn slash_narrows_as_one_types_and_esc_brings_the_old_filter_back() {
        let mut view = view();
        view.key(Key::Char('/'));
        typed(&mut view, "port:54");
        assert_eq!(ports(&view), [54_u16; 0]);
        typed(&mut view, "32");
        assert_eq!(ports(&view), [5432]);
        view.key(Key::Enter);
        assert_eq!(view.mode, Mode::Table);
        assert_eq!(view.filter.text, "port:5432");
        view.key(Key::Char('/'));
        for _ in 0..4 {
            view.key(Key::Backspace);
        }
        typed(&mut view, "80");
        assert_eq!(ports(&view), [80, 80]);
        view.key(Key::Esc);
        assert_eq!(ports(&view), [5432]);
        // A filter that does not parse is said and not taken.
        view.key(Key::Char('/'));
        view.key(Key::Ctrl('u'));
        typed(&mut view, "state:nope");
        view.key(Key::Enter);
        assert!(matches!(view.mode, Mode::Filter { .. }));
        assert!(view.message().is_some_and(|m| m.contains("no such state")));
        view.key(Key::Esc);
        assert_eq!(ports(&view), [5432]);
    }

    #[test]
    fn sorting_by_any_column_either_way() {
        let mut view = view();
        view.key(Key::Char('a'));
        // PID/PROGRAM is the 8th column: by name, ownerless last.
        view.key(Key::Char('8'));
        assert_eq!(view.sort, Some((Column::Process, false)));
        let names: Vec<String> = view
            .visible_rows(0, 9)
            .map(|row| {
                row.entry
                    .processes
                    .first()
                    .map_or("-".into(), |p| p.name.clone())
            })
            .collect();
        assert_eq!(names, ["dnsmasq", "nginx", "nginx", "postgres", "-"]);
        view.key(Key::Char('8'));
        assert_eq!(view.sort, Some((Column::Process, true)));
        let first = view
            .visible_rows(0, 1)
            .next()
            .map(|r| r.entry.processes.len());
        assert_eq!(first, Some(1), "descending keeps ownerless rows last");
        view.key(Key::Char('0'));
        assert_eq!(view.sort, None);
        // From the listing's order `>` starts at the first column, PROTO: TCP before UDP.
        view.key(Key::Char('>'));
        assert_eq!(view.sort, Some((Column::Proto, false)));
        view.key(Key::Char('>'));
        assert_eq!(view.sort, Some((Column::Local, false)));
        assert_eq!(ports(&view), [53, 80, 80, 80, 5432]);
        view.key(Key::Char('r'));
        assert_eq!(ports(&view), [5432, 80, 80, 80, 53]);
        view.key(Key::Char('<'));
        view.key(Key::Char('<'));
        assert_eq!(view.sort, Some((Column::Proto, true)));
    }

    #[test]
    fn new_rows_are_marked_for_a_while_and_closed_ones_stay_briefly() {
        let mut view = view();
        let mut later = host();
        later.retain(|e| e.socket.local.port() != 5432);
        later.push(owned(
            entry(Proto::Tcp, "0.0.0.0:8443", None, State::Listen),
            400,
            "app",
            "deploy",
        ));
        let one = Duration::from_secs(1);
        view.update(later.clone(), Vec::new(), one);
        let marks: Vec<(u16, bool, bool)> = view
            .visible_rows(0, 9)
            .map(|r| (r.entry.socket.local.port(), r.is_new(one), r.is_closed()))
            .collect();
        assert_eq!(
            marks,
            [
                (53, false, false),
                (80, false, false),
                (5432, false, true),
                (8443, true, false),
                (80, false, false)
            ]
        );
        // The closed row goes once CLOSED_FOR passed, at a tick or a reading.
        view.tick(one + CLOSED_FOR - Duration::from_millis(1));
        assert!(ports(&view).contains(&5432));
        view.tick(one + CLOSED_FOR);
        assert!(!ports(&view).contains(&5432));
        // The new one stops being new after NEW_FOR, and stays.
        let much_later = one + NEW_FOR;
        view.update(later, Vec::new(), much_later);
        assert!(view.visible_rows(0, 9).all(|r| !r.is_new(much_later)));
        assert!(ports(&view).contains(&8443));
    }

    #[test]
    fn the_tracker_orders_rows_and_keeps_alike_sockets_alive() {
        let mut tracker = Tracker::default();
        // Two sockets no inode tells apart (netstat2 reads none): one key, neither closes.
        let mut twin = entry(Proto::Udp, "0.0.0.0:5353", None, State::Unconn);
        twin.socket.inode = 0;
        let mut readings = host();
        readings.extend([twin.clone(), twin]);
        let first = tracker.update(readings.clone(), Duration::ZERO);
        let second = tracker.update(readings, Duration::from_secs(1));
        assert_eq!(second.len(), first.len());
        assert!(
            second
                .iter()
                .all(|row| !row.is_closed() && row.appeared.is_none())
        );
        let ports: Vec<u16> = second.iter().map(|r| r.entry.socket.local.port()).collect();
        assert_eq!(ports, [53, 80, 5353, 5353, 5432, 80, 80]);
        // Gone, then back: new again.
        let third = tracker.update(Vec::new(), Duration::from_secs(2));
        assert!(third.iter().all(Row::is_closed));
        let back = tracker.update(host(), Duration::from_secs(3));
        let (open, closed): (Vec<&Row>, Vec<&Row>) = back.iter().partition(|row| !row.is_closed());
        assert!(
            open.iter()
                .all(|row| row.appeared == Some(Duration::from_secs(3)))
        );
        assert_eq!(open.len(), 5);
        // The twins went at 2 s and stay shown until CLOSED_FOR has passed since.
        assert_eq!(closed.len(), 2);
        assert!(
            closed
                .iter()
                .all(|row| row.closed == Some(Duration::from_secs(2)))
        );
    }

    #[test]
    fn the_selection_follows_its_socket_across_readings_and_sorts() {
        let mut view = view();
        view.key(Key::Down);
        view.key(Key::Down);
        assert_eq!(
            view.selected_row().map(|r| r.entry.socket.local.port()),
            Some(5432)
        );
        view.key(Key::Char('r'));
        assert_eq!(
            view.selected_row().map(|r| r.entry.socket.local.port()),
            Some(5432)
        );
        view.update(host(), Vec::new(), Duration::from_secs(1));
        assert_eq!(
            view.selected_row().map(|r| r.entry.socket.local.port()),
            Some(5432)
        );
        view.key(Key::End);
        view.key(Key::Down);
        assert_eq!(view.cursor(), Some(3));
        view.scroll(2);
        assert_eq!(view.offset, 2);
        view.key(Key::Home);
        view.scroll(2);
        assert_eq!(view.offset, 0);
        view.key(Key::PageDown);
        assert_eq!(view.cursor(), Some(2), "a page is the rows drawn");
    }

    #[test]
    fn enter_opens_the_details_and_asks_for_them() {
        let mut view = view();
        view.key(Key::Down);
        let action = view.key(Key::Enter);
        let Action::LoadDetails(key) = action else {
            panic!("{action:?}");
        };
        assert_eq!(key.local.port(), 80);
        assert_eq!(view.mode, Mode::Details);
        view.set_details(key, Details::default());
        assert!(view.pane.as_ref().is_some_and(|p| p.details.is_some()));
        view.key(Key::Esc);
        assert_eq!(view.mode, Mode::Table);
        assert!(view.pane.is_none());
    }

    #[test]
    fn k_asks_first_and_stops_only_on_yes() {
        let mut view = view();
        view.key(Key::Down);
        view.key(Key::Down);
        let Action::PlanStop(target) = view.key(Key::Char('k')) else {
            panic!("k plans first");
        };
        assert_eq!((target.pid, target.name.as_str()), (300, "postgres"));
        assert_eq!(target.socket.port, 5432);
        assert_eq!(view.mode, Mode::Table, "not asked before the plan is known");
        view.ask_stop(target.clone());
        assert_eq!(view.key(Key::Char('n')), Action::Nothing);
        assert_eq!(view.mode, Mode::Table);
        view.ask_stop(target.clone());
        assert_eq!(view.key(Key::Char('y')), Action::Stop(target));
    }

    #[test]
    fn k_names_the_top_most_holder_and_says_why_there_is_none() {
        let mut view = View::new();
        let mut shared = entry(Proto::Tcp, "0.0.0.0:80", None, State::Listen);
        let worker = Arc::new(Process {
            ppid: Some(10),
            ..(*Process::example(11, "nginx", None)).clone()
        });
        let master = Arc::new(Process {
            ppid: Some(1),
            ..(*Process::example(10, "nginx", None)).clone()
        });
        shared.processes = vec![worker, master];
        let mut hidden = entry(Proto::Tcp, "127.0.0.1:9000", None, State::Listen);
        hidden.owner_note = Some(OwnerNote::Hidden);
        view.update(vec![shared, hidden], Vec::new(), Duration::ZERO);
        assert!(matches!(view.key(Key::Char('k')), Action::PlanStop(t) if t.pid == 10));
        view.key(Key::Down);
        view.key(Key::Char('k'));
        assert_eq!(view.mode, Mode::Table);
        assert!(view.message().is_some_and(|m| m.contains("hidden")));
    }

    #[test]
    fn quit_keys() {
        let mut view = view();
        assert_eq!(view.key(Key::Char('q')), Action::Quit);
        assert_eq!(view.key(Key::Esc), Action::Quit);
        view.key(Key::Char('/'));
        // In the filter line q is a letter, and Ctrl-C still quits.
        assert_eq!(view.key(Key::Char('q')), Action::Nothing);
        assert_eq!(view.key(Key::Ctrl('c')), Action::Quit);
        let mut view = self::view();
        view.key(Key::Char('?'));
        assert_eq!(view.mode, Mode::Help);
        assert_eq!(view.key(Key::Char('x')), Action::Nothing);
        assert_eq!(view.mode, Mode::Table);
    }
}
